"""The transactional outbox between intake and Celery.

An accepted event and its outbox entry are committed together; the relay (``relay.py``)
hands entries to the broker and marks them published. If the broker is down, publishing
fails and the entry simply stays pending: :func:`sweep` (run by beat every few seconds)
publishes anything not done within a bound, and re-queues runs whose worker died.
Consumers are idempotent, so a message published twice is processed once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from portal.processflows.dispatch import publish_events, publish_run
from portal.processflows.models import Outbox, Run, RunStatus

logger = logging.getLogger(__name__)

# Entries and runs re-published per sweep at most; the next sweep takes the rest.
BATCH = 1000


def sweep() -> dict[str, int]:
    """Re-publish what is overdue. Safe to run anywhere, any number of times.

    Each entry or run is re-published at most once per bound, so a backlog that workers are
    slowly draining is not multiplied by every sweep.
    """
    now = timezone.now()
    bound = timedelta(seconds=settings.PORTAL_OUTBOX_REDELIVERY_SECONDS)
    # Anything not done within the bound of its creation and of its last publication (by
    # the relay or an earlier sweep) is published again and marked here.
    overdue = (
        Outbox.objects.filter(done_at__isnull=True, created_at__lt=now - bound)
        .filter(Q(published_at__isnull=True) | Q(published_at__lt=now - bound))
        .order_by("pk")
    )
    pending = list(overdue.values_list("pk", "event__organization_id", "event_id")[:BATCH])
    outbox_sent = publish_events([(org, event) for _, org, event in pending])
    Outbox.objects.filter(pk__in=[pk for pk, _, _ in pending[:outbox_sent]]).update(
        published_at=now, publish_attempts=F("publish_attempts") + 1
    )

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
    sent_runs = []
    for organization_id, run_id in every_run.filter(waiting & overdue_run).values_list(
        "organization_id", "pk"
    )[:BATCH]:
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
    return {"events": outbox_sent, "runs": runs_sent, "released": released}
