"""How many refused deliveries intake writes down: at most
``PORTAL_REJECTED_DELIVERIES_PER_MINUTE`` rows per deployment per minute, one more row that
stands for the rest of that minute, and a count of the rest.

Anyone who knows a Processflow URL can post unsigned requests to it; storing each one would
let them grow a table and keep the database busy at will. The count is a cache counter (a
Redis ``INCR``, atomic across every web worker), so the cap holds whatever the number of
workers. Only refused deliveries come here: accepting a delivery costs nothing more.

The row that stands for the rest carries the minute it counts; its count is read from the
cache while the minute lasts and written to the row the first time it is read after that
(:func:`with_unstored_counts`). The minute's counter is kept long enough for that
(``RETAIN_SECONDS``); should it be gone, the page says more were refused without a number.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from portal import counters
from portal.processflows.models import RejectedDelivery

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# How long a minute's count outlives it when some of it was not stored, for the page to read.
RETAIN_SECONDS = 7 * 24 * 3600


class Admission(enum.Enum):
    STORE = "store"  # store the rejection as usual
    STAND_FOR_THE_REST = "stand for the rest"  # the first over the cap: store one row for all
    COUNT = "count"  # only counted


def _key(deployment_id: int, minute: int) -> str:
    return f"intake-rejections:{deployment_id}:{minute}"


def admit(deployment_id: int) -> tuple[Admission, datetime]:
    """Count one refused delivery to ``deployment_id``; say whether to store it, and the
    minute it was counted in."""
    now = time.time()
    minute = int(now - now % WINDOW_SECONDS)
    started = datetime.fromtimestamp(minute, tz=UTC)
    cap = settings.PORTAL_REJECTED_DELIVERIES_PER_MINUTE
    key = _key(deployment_id, minute)
    try:
        count = counters.increment(key, timeout=WINDOW_SECONDS * 2)
    except Exception as error:  # any backend's error: an outage must not lose the record
        logger.warning("rejection counter unavailable, storing the rejection: %r", error)
        return Admission.STORE, started
    if count <= cap:
        return Admission.STORE, started
    if count == cap + 1:
        try:
            cache.touch(key, RETAIN_SECONDS)
        except Exception as error:  # the count is lost; the cap still holds
            logger.warning("rejection counter unavailable: %r", error)
        return Admission.STAND_FOR_THE_REST, started
    return Admission.COUNT, started


def with_unstored_counts(
    rows: Iterable[RejectedDelivery], *, now: datetime | None = None
) -> list[RejectedDelivery]:
    """``rows`` as a list; each row that stands for the rest of a minute gets ``unstored``:
    how many refused deliveries of that minute were counted and not stored (None when the
    count is no longer known). A finished minute's count is written to its row."""
    rows = list(rows)
    pending = [r for r in rows if r.unstored_minute is not None and r.unstored_count is None]
    counts = {}
    if pending:
        keys = {r.pk: _key(r.deployment_id, int(r.unstored_minute.timestamp())) for r in pending}
        try:
            found = cache.get_many(list(keys.values()))
        except Exception as error:  # the page says "more" without a number
            logger.warning("rejection counter unavailable: %r", error)
            found = {}
        cap = settings.PORTAL_REJECTED_DELIVERIES_PER_MINUTE
        over = (now or timezone.now()) - timedelta(seconds=WINDOW_SECONDS + 5)
        for row in pending:
            total = found.get(keys[row.pk])
            if total is None:
                continue
            counts[row.pk] = max(int(total) - cap, 1)
            if row.unstored_minute < over:  # the minute is over: its count is final
                row.unstored_count = counts[row.pk]
                RejectedDelivery.objects.for_tenant(row.organization_id).filter(
                    pk=row.pk, unstored_count=None
                ).update(unstored_count=row.unstored_count)
    for row in rows:
        if row.unstored_minute is not None:
            row.unstored = row.unstored_count or counts.get(row.pk)
    return rows
