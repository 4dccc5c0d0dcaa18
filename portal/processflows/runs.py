"""From accepted events to runs, and replays."""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from flows.redaction import redact
from portal.processflows.dispatch import publish_run
from portal.processflows.models import Outbox, Run, RunStatus, TriggerEvent, TriggerType


def trigger_document(event: TriggerEvent) -> dict:
    """The event's body as the run's ``trigger`` context (full, in memory only)."""
    try:
        document = json.loads(bytes(event.body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return document if isinstance(document, dict) else {"value": document}


def _wanted(event: TriggerEvent) -> bool:
    trigger = event.deployment.version.definition.get("trigger", {})
    if trigger.get("type") != TriggerType.WEBHOOK or not event.event_name:
        return True
    return event.event_name in trigger.get("events", [])


@transaction.atomic
def start_run_for_event(organization_id: int, event_id: int) -> Run | None:
    """Create the event's run (once, however often this is called) and queue it.

    Marks the outbox entry done in the same transaction, so the sweeper stops re-publishing.
    An event the flow does not subscribe to is marked done without a run.
    """
    run = runs_for_events([(organization_id, event_id)]).get(event_id)
    if run is not None and run.status in (RunStatus.QUEUED, RunStatus.RETRYING):
        run_id = run.pk
        transaction.on_commit(lambda: publish_run(organization_id, run_id))
    return run


@transaction.atomic
def start_runs_for_events(events: Sequence[tuple[int, int]]) -> list[Run]:
    """Create the runs of a batch of ``(organization_id, event_id)`` (once each), mark their
    outbox entries done, and return the runs still waiting to be executed: the caller
    executes them itself or queues them (``dispatch.publish_run``)."""
    return [
        run
        for run in runs_for_events(events).values()
        if run.status in (RunStatus.QUEUED, RunStatus.RETRYING)
    ]


def runs_for_events(events: Sequence[tuple[int, int]]) -> dict[int, Run]:
    """The run of each event, by event id, created where missing (the one place event runs
    are created); marks the events' outbox entries done. Call it in a transaction.

    The outbox entries are locked first, in id order: a worker handling an overlapping
    batch (a re-published message) waits here, then finds the runs made, and two batches
    never wait for each other in a circle. An event named with another organization than
    its own is left alone, as is one the flow does not subscribe to (marked done, no run).
    """
    event_ids = sorted({event_id for _, event_id in events})
    entries = list(
        Outbox.objects.select_for_update()
        .filter(event_id__in=event_ids)
        .order_by("pk")
        .values_list("pk", "event_id", "done_at")
    )
    by_organization: dict[int, list[int]] = {}
    for organization_id, event_id in events:
        by_organization.setdefault(organization_id, []).append(event_id)
    found: dict[int, Run] = {}
    known: set[int] = set()
    new: list[Run] = []
    for organization_id, ids in by_organization.items():
        existing = {
            run.event_id: run
            for run in Run.objects.for_tenant(organization_id).filter(
                event_id__in=ids, replay_of=None
            )
        }
        for event in (
            TriggerEvent.objects.for_tenant(organization_id)
            .select_related("deployment__version", "deployment__processflow")
            .filter(pk__in=ids)
        ):
            known.add(event.pk)
            run = existing.get(event.pk)
            if run is None and _wanted(event):
                deployment = event.deployment
                run = Run(
                    organization_id=event.organization_id,
                    processflow=deployment.processflow,
                    version=deployment.version,
                    deployment=deployment,
                    event=event,
                    input=redact(trigger_document(event)),
                )
                new.append(run)
            if run is not None:
                found[event.pk] = run
    if new:
        Run.objects.bulk_create(new)
    finished = [pk for pk, event_id, done_at in entries if done_at is None and event_id in known]
    if finished:
        Outbox.objects.filter(pk__in=finished).update(done_at=timezone.now())
    return found


def replay(run: Run) -> Run:
    """A new run of the same version and input, for a run that failed."""
    new = Run.objects.create(
        organization_id=run.organization_id,
        processflow=run.processflow,
        version=run.version,
        deployment=run.deployment,
        event=run.event,
        replay_of=run,
        input=run.input,
    )
    transaction.on_commit(lambda: publish_run(new.organization_id, new.pk))
    return new
