"""Polling flows: schedules in django-celery-beat, and the poll that turns new records into
events (each record once, through the same outbox as webhooks)."""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from portal.agents import work as agent_work
from portal.processflows import dispatch
from portal.processflows.models import Deployment, Outbox, TriggerEvent
from portal.vault import calls
from portal.vault.selectors import credential_for_use

# Records fetched per poll at most; a source should narrow itself (min_start_time, status…)
# rather than rely on this.
POLL_LIMIT = 1000


def schedule(deployment: Deployment) -> PeriodicTask:
    """Create the beat entry for a polling deployment (interval, cron, or once)."""
    spec = deployment.version.definition["trigger"]["schedule"]
    name = f"processflow {deployment.processflow_id} deployment {deployment.pk}"
    args = json.dumps([deployment.organization_id, deployment.pk])  # poll(organization, id)
    fields = {"task": dispatch.POLL, "args": args, "queue": "actions"}
    if "cron" in spec:
        minute, hour, day_of_month, month_of_year, day_of_week = spec["cron"].split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month,
            month_of_year=month_of_year, day_of_week=day_of_week, timezone="UTC",
        )  # fmt: skip
        fields["crontab"] = crontab
    else:
        every = int(spec.get("every_seconds") or 60)
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=every, period=IntervalSchedule.SECONDS
        )
        fields["interval"] = interval
        if spec.get("once"):
            fields["one_off"] = True
            fields["start_time"] = timezone.now()
    return PeriodicTask.objects.create(name=name, **fields)


def unschedule(deployment: Deployment) -> None:
    """Remove a deployment's beat entry (nothing if it has none)."""
    if deployment.schedule_id:
        PeriodicTask.objects.filter(pk=deployment.schedule_id).delete()


def _record_key(item) -> str:
    if isinstance(item, dict):
        identity = item.get("uri") or item.get("id")
        if identity:
            return f"{identity}|{item.get('updated_at', '')}"[:128]
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
    return f"sha256:{digest}"


def _store(deployment: Deployment, item: dict, *, dedupe_key: str, name: str) -> int | None:
    try:
        with transaction.atomic():
            event = TriggerEvent.objects.create(
                organization_id=deployment.organization_id,
                deployment=deployment,
                source=TriggerEvent.Source.POLL,
                event_name=name,
                dedupe_key=dedupe_key,
                body=json.dumps(item, default=str).encode(),
            )
            Outbox.objects.create(event=event)
    except IntegrityError:
        return None  # seen before: each record is processed once
    return event.pk


def _record_error(deployment: Deployment, now, message: str) -> None:
    Deployment.objects.for_tenant(deployment.organization_id).filter(pk=deployment.pk).update(
        cursor={
            **deployment.cursor,
            "polled_at": now.isoformat(),
            "new_records": 0,
            "last_error": message,
            "last_error_at": now.isoformat(),
        }
    )


def poll(organization_id: int, deployment_id: int) -> int:
    """Fetch the source's records (or make one tick) and store the new ones as events.

    A record is new if no deployment of the same processflow stored it before, so
    redeploying (a new schedule, a new version) does not process old records again. The
    deployment's cursor records when it polled, how many records were new, and the last
    error.
    """
    deployment = (
        Deployment.objects.for_tenant(organization_id)
        .select_related("version", "processflow__organization")
        .filter(pk=deployment_id, state=Deployment.State.ACTIVE)
        .first()
    )
    if deployment is None:
        return 0
    trigger = deployment.version.definition["trigger"]
    source = trigger.get("source")
    if source and deployment.agent_group_id is not None:
        return agent_work.queue_poll(deployment)  # the agent holds the source's credential
    now = timezone.now()
    if not source:
        items = [{"tick": now.isoformat()}]
        keys = [f"tick:{now.isoformat()}"]
        name = "schedule"
    else:
        credential = credential_for_use(
            deployment.processflow.organization, source.get("credential")
        )
        if credential is None:
            _record_error(deployment, now, "The source's credential was deleted.")
            return 0
        result = calls.run_action(
            credential, source["action"], filters=source.get("filters", []), context={},
            limit=POLL_LIMIT,
            purpose=f"processflow {deployment.processflow.name!r}, poll",
        )  # fmt: skip
        if not result.ok:
            _record_error(deployment, now, result.message)
            return 0
        items = result.items if result.items is not None else [result.data]
        keys = [_record_key(item) for item in items]
        name = source["action"]
    return store_records(deployment, items, keys=keys, name=name, now=now)


def record_error(deployment: Deployment, message: str) -> None:
    """Note on the deployment that a poll failed (shown with its processflow)."""
    _record_error(deployment, timezone.now(), message)


def store_records(
    deployment: Deployment,
    items: list,
    *,
    name: str,
    now=None,
    keys: list[str] | None = None,
    agent_cursor: dict | None = None,
) -> int:
    """Store the records a poll fetched as events, each once per processflow (a record seen
    before, by any of its deployments, is skipped); returns how many were new. ``cursor``
    is kept for the next poll (an agent's own)."""
    organization_id = deployment.organization_id
    now = now or timezone.now()
    keys = keys or [_record_key(item) for item in items]
    seen = set(
        TriggerEvent.objects.for_tenant(organization_id)
        .filter(deployment__processflow_id=deployment.processflow_id, dedupe_key__in=set(keys))
        .values_list("dedupe_key", flat=True)
    )
    created = []
    for item, key in zip(items, keys, strict=True):
        if key in seen:
            continue
        seen.add(key)  # the same record twice in one answer is one record
        event_id = _store(deployment, item, dedupe_key=key, name=name)
        if event_id is not None:
            created.append(event_id)
    cursor = {
        **deployment.cursor,
        "polled_at": now.isoformat(),
        "records": len(items),
        "new_records": len(created),
        "last_error": "",
        **({"agent": agent_cursor} if agent_cursor is not None else {}),
    }
    Deployment.objects.for_tenant(organization_id).filter(pk=deployment.pk).update(cursor=cursor)
    return len(created)  # the relay publishes the new events, as it does webhook events
