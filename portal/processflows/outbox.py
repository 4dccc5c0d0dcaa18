"""The transactional outbox between intake and Celery.

An accepted event and its outbox entry are committed together; the relay (``relay.py``)
hands entries to the broker and marks them published. If the broker is down, publishing
fails and the entry simply stays pending: :func:`sweep` (run by beat every few seconds)
publishes what is really stuck, and re-queues runs whose worker died.
Consumers are idempotent, so a message published twice is processed once.

What is "really stuck" is decided without a storm (issue 14: four sweeps at once republished
the same 1,000 events four times, and entries merely waiting in a long queue were published
again every bound):

- one sweep at a time, across every worker process (:func:`_only_one_sweeper`);
- an entry never published, older than the bound, is published (the relay did not);
- an entry published but not done more than a bound ago is published again only if the
  queue cannot be holding its message: the queue's messages, each counted as a full batch
  of ``PORTAL_EVENTS_PER_TASK`` events, are fewer than such entries. The queue is first
  in, first out, so the oldest of them are the ones consumed
  and lost (a worker killed with its message, a broker that lost its data); only that many,
  oldest first, are published again. While a backlog drains, nothing is;
- runs waiting for a worker are treated the same way against the ``actions`` queue.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.processflows.dispatch import publish_events, publish_run
from portal.processflows.models import Outbox, Run, RunStatus
from portal.queues import queue_depth

logger = logging.getLogger(__name__)

# Entries and runs re-published per sweep at most; the next sweep takes the rest.
BATCH = 1000
# pg_try_advisory_lock's key for "a sweep is running" (any constant unique to the portal).
_LOCK_KEY = 0x5EE9_0B07
_LOCK_CACHE_KEY = "processflows:outbox:sweeping"
INTAKE_QUEUE, ACTIONS_QUEUE = "intake", "actions"


@contextlib.contextmanager
def _only_one_sweeper() -> Iterator[bool]:
    """Whether this sweep may run: True for one caller at a time, across processes.

    PostgreSQL: a session advisory lock, released at the end or when a killed worker's
    connection closes. Elsewhere (SQLite, the embedded mode): an atomic ``cache.add`` that
    expires on its own should its holder be killed.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
            acquired = cursor.fetchone()[0]
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
        return
    token = uuid.uuid4().hex
    ttl = max(60, 2 * settings.PORTAL_OUTBOX_REDELIVERY_SECONDS)
    acquired = cache.add(_LOCK_CACHE_KEY, token, timeout=ttl)
    try:
        yield acquired
    finally:
        if acquired and cache.get(_LOCK_CACHE_KEY) == token:
            cache.delete(_LOCK_CACHE_KEY)


def sweep() -> dict[str, int]:
    """Re-publish what is really stuck (see the module's docstring); safe to call anywhere,
    any number of times, at once: a sweep that finds another running does nothing and
    says so (``skipped``)."""
    with _only_one_sweeper() as mine:
        if not mine:
            return {"events": 0, "runs": 0, "released": 0, "skipped": 1}
        return _sweep()


def _sweep() -> dict[str, int]:
    now = timezone.now()
    bound = timedelta(seconds=settings.PORTAL_OUTBOX_REDELIVERY_SECONDS)
    outbox_sent = _republish_events(now, bound)

    every_run = Run.objects.unscoped("the sweeper re-queues every organization's lost runs")
    # A run whose worker died holds an expired lease: hand it back as waiting (the old
    # worker, should it still be alive, can no longer write), then re-publish it below.
    abandoned = every_run.filter(
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING],
        lease_expires_at__lt=now,
    )
    released = abandoned.update(
        status=RunStatus.RETRYING,
        lease_owner="",
        lease_expires_at=None,
        next_attempt_at=now - bound - timedelta(seconds=1),
        error="Its worker stopped before finishing; the run resumes where it was.",
    )
    # A waiting run is overdue when its message should have been consumed long ago: queued
    # (or due) more than a bound ago. Re-publishing sets ``next_attempt_at`` to now, which
    # keeps it due for claiming and out of the next sweeps until another bound has passed.
    # Runs of on-premise agent groups are not the broker's: their agents take them from
    # the database (the release above is all they need).
    waiting = Q(
        status__in=[RunStatus.QUEUED, RunStatus.RETRYING],
        lease_expires_at__isnull=True,
        deployment__agent_group__isnull=True,
    )
    overdue_run = Q(next_attempt_at__isnull=True, created_at__lt=now - bound) | Q(
        next_attempt_at__lt=now - bound
    )
    overdue_runs = every_run.filter(waiting & overdue_run)
    lost = _lost(overdue_runs.count(), ACTIONS_QUEUE)
    sent_runs = []
    for organization_id, run_id in overdue_runs.order_by("pk").values_list("organization_id", "pk")[
        :lost
    ]:
        if not publish_run(organization_id, run_id, agent_group_id=None):
            break
        sent_runs.append(run_id)
    # Only runs still waiting as they were: one a worker finished or rescheduled meanwhile
    # keeps what the worker wrote.
    every_run.filter(waiting & overdue_run, pk__in=sent_runs).update(next_attempt_at=now)
    runs_sent = len(sent_runs)
    if outbox_sent or runs_sent or released:
        logger.info(
            "sweeper re-published %s event(s) and %s run(s); %s run(s) had lost their worker",
            outbox_sent, runs_sent, released,
        )  # fmt: skip
    return {"events": outbox_sent, "runs": runs_sent, "released": released, "skipped": 0}


def _lost(overdue: int, queue: str, *, per_message: int = 1) -> int:
    """How many of ``overdue`` items waiting for ``queue`` cannot have a message in it (at
    most a batch); none when the broker cannot say (it is down: nothing would reach it).

    A message may carry up to ``per_message`` items (events travel in batches), so the
    queue is counted as full ones: what it may still hold is never published again, and
    what it lost is, at the latest once it has drained."""
    if not overdue:
        return 0
    depth = queue_depth(queue)
    if depth is None:
        return 0
    return min(BATCH, max(0, overdue - depth * per_message))


def _republish_events(now, bound: timedelta) -> int:
    """Publish entries the relay never published, and the lost among those published; rows
    are locked (``SKIP LOCKED``) so the relay never publishes the same entry meanwhile."""
    pending = Outbox.objects.filter(done_at__isnull=True, created_at__lt=now - bound)
    sent = 0
    with transaction.atomic():
        unpublished = list(
            pending.filter(published_at__isnull=True)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "event__organization_id", "event_id")[:BATCH]
        )
        sent += _publish_and_mark(unpublished, now)
    stale = pending.filter(published_at__lt=now - bound)
    lost = _lost(stale.count(), INTAKE_QUEUE, per_message=settings.PORTAL_EVENTS_PER_TASK)
    if lost:
        with transaction.atomic():
            oldest = list(
                stale.select_for_update(skip_locked=True)
                .order_by("published_at", "pk")
                .values_list("pk", "event__organization_id", "event_id")[:lost]
            )
            sent += _publish_and_mark(oldest, now)
    return sent


def _publish_and_mark(entries: list[tuple[int, int, int]], now) -> int:
    if not entries:
        return 0
    sent = publish_events([(org, event) for _, org, event in entries])
    Outbox.objects.filter(pk__in=[pk for pk, _, _ in entries[:sent]]).update(
        published_at=now, publish_attempts=F("publish_attempts") + 1
    )
    return sent
