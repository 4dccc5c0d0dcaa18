"""The outbox relay: moves accepted events from the database into Celery.

Intake only writes (the event and its outbox entry, one commit) and answers; this loop,
running as its own process (``manage.py relay_outbox``), publishes new entries in batches
over one broker connection, marking each published. If the broker is down it waits and
tries again; entries stay in the database meanwhile, so nothing is lost, only delayed. The
sweeper (``outbox.sweep``) remains the safety net for anything published but never done.
"""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from portal.processflows.dispatch import publish_events
from portal.processflows.models import Outbox

logger = logging.getLogger(__name__)

BATCH = 500
# The id of the request that delivered the event (stored with its headers), for the logs.
REQUEST_ID = "event__headers__x-request-id"


def relay_once(*, batch: int = BATCH) -> int:
    """Publish up to ``batch`` unpublished entries, oldest first; returns how many.

    Rows are locked while they are published (``SKIP LOCKED``), so several relays can run
    side by side without publishing the same entry twice.
    """
    with transaction.atomic():
        pending = list(
            Outbox.objects.filter(published_at__isnull=True, done_at__isnull=True)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "event__organization_id", "event_id", REQUEST_ID)[:batch]
        )
        if not pending:
            return 0
        sent = publish_events(
            [(org, event) for _, org, event, _ in pending],
            request_ids={event: request_id for _, _, event, request_id in pending},
        )
        if sent:
            Outbox.objects.filter(pk__in=[pk for pk, _, _, _ in pending[:sent]]).update(
                published_at=timezone.now(), publish_attempts=F("publish_attempts") + 1
            )
    return sent


def run(stop: threading.Event, *, idle: float = 0.05, broker_down: float = 2.0) -> None:
    """Relay until ``stop`` is set: at once while there is work, every ``idle`` seconds
    when there is none, every ``broker_down`` seconds while the broker refuses."""
    while not stop.is_set():
        try:
            sent = relay_once()
        except Exception:  # the database went away: keep the process, try again shortly
            logger.exception("outbox relay failed; retrying")
            close_old_connections()
            stop.wait(broker_down)
            continue
        if sent == BATCH:
            continue
        if sent == 0 and _has_unpublished():
            stop.wait(broker_down)  # entries are waiting but the broker took none
        else:
            stop.wait(idle)


def _has_unpublished() -> bool:
    return Outbox.objects.filter(published_at__isnull=True, done_at__isnull=True).exists()
