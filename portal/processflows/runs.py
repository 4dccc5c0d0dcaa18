"""From accepted events to runs, and replays."""

from __future__ import annotations

import json

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
    outbox = Outbox.objects.select_for_update().filter(event_id=event_id).first()
    event = (
        TriggerEvent.objects.for_tenant(organization_id)
        .select_related("deployment__version", "deployment__processflow")
        .filter(pk=event_id)
        .first()
    )
    if event is None:
        return None
    run = event.runs.filter(replay_of=None).first()
    if run is None and _wanted(event):
        deployment = event.deployment
        run = Run.objects.create(
            organization_id=event.organization_id,
            processflow=deployment.processflow,
            version=deployment.version,
            deployment=deployment,
            event=event,
            input=redact(trigger_document(event)),
        )
    if outbox is not None and outbox.done_at is None:
        outbox.done_at = timezone.now()
        outbox.save(update_fields=["done_at"])
    if run is not None and run.status in (RunStatus.QUEUED, RunStatus.RETRYING):
        run_id, group_id = run.pk, event.deployment.agent_group_id
        transaction.on_commit(lambda: publish_run(organization_id, run_id, agent_group_id=group_id))
    return run


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
