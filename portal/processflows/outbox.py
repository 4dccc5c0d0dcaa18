"""The transactional outbox between intake and Celery.

An accepted event and its outbox entry are committed together; :func:`publish` then hands
the entry to the broker. If the broker is down, publishing fails fast and the entry simply
stays pending: :func:`sweep` (run by beat every few seconds) publishes anything not done
within a bound, and re-queues runs whose worker died. Consumers are idempotent, so a
message published twice is processed once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from portal.processflows.models import Outbox, Run, RunStatus

logger = logging.getLogger(__name__)


def enqueue(task, *args, countdown: float = 0) -> bool:
    """Send ``task(*args)`` to the broker; False (logged) if the broker is unreachable.

    Callers keep the state that says the work is due in the database, so the sweeper or the
    reconciler sends it again later: a broker outage must never fail a request whose
    transaction already committed.
    """
    try:
        task.apply_async(args, countdown=countdown or None, retry=False)
    except Exception as error:  # any broker failure leaves the work for the sweeper
        logger.warning("%s%s not queued (%s)", task.name, args, type(error).__name__)
        return False
    return True


def publish(event_ids: list[int]) -> int:
    """Send ``process_event`` for each event; returns how many reached the broker.

    Never raises, and stops at the first failure: with the broker down every further try
    would only wait for its own timeout. What was not sent stays pending for the sweeper.
    """
    from portal.processflows.tasks import process_event

    sent = 0
    for event_id in event_ids:
        if not enqueue(process_event, event_id):
            break
        sent += 1
    return sent


def publish_run(run_id: int, *, countdown: float = 0) -> bool:
    """Queue a run for execution; False (logged) if the broker is unreachable."""
    from portal.processflows.tasks import execute_run

    return enqueue(execute_run, run_id, countdown=countdown)


def sweep() -> dict[str, int]:
    """Re-publish what is overdue. Safe to run anywhere, any number of times."""
    now = timezone.now()
    bound = timedelta(seconds=settings.PORTAL_OUTBOX_REDELIVERY_SECONDS)
    # Intake publishes right after commit without marking it (one write fewer on the hot
    # path); anything not done within the bound is published again and marked here.
    overdue = (
        Outbox.objects.filter(done_at__isnull=True, created_at__lt=now - bound)
        .filter(Q(published_at__isnull=True) | Q(published_at__lt=now - bound))
        .order_by("pk")
    )
    pending = list(overdue.values_list("pk", "event_id")[:1000])
    outbox_sent = publish([event_id for _, event_id in pending])
    Outbox.objects.filter(pk__in=[pk for pk, _ in pending[:outbox_sent]]).update(
        published_at=now, publish_attempts=F("publish_attempts") + 1
    )

    waiting = Q(status__in=[RunStatus.QUEUED, RunStatus.RETRYING], lease_expires_at__isnull=True)
    overdue_run = Q(next_attempt_at__isnull=True, created_at__lt=now - bound) | Q(
        next_attempt_at__lt=now - bound
    )
    lease_lost = Q(
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING],
        lease_expires_at__lt=now,
    )
    stuck_runs = Run.objects.filter((waiting & overdue_run) | lease_lost)
    runs_sent = 0
    for run_id in stuck_runs.values_list("pk", flat=True)[:1000]:
        if not publish_run(run_id):
            break
        runs_sent += 1
    if outbox_sent or runs_sent:
        logger.info("sweeper re-published %s event(s) and %s run(s)", outbox_sent, runs_sent)
    return {"events": outbox_sent, "runs": runs_sent}
