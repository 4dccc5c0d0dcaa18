"""The portal's half of the agent transport: handing out work, and taking back what the
agent reports (step records, lease renewals, run outcomes, job results).

Runs are leased to an agent exactly as to a Cloud worker (``execution.claim_for_group``: as
many as the agent has free slots, in one conditional UPDATE with a fresh token) and
concluded by the same outcome logic (``execution.conclude``: retry with backoff, alerts);
a run's step records and outcome usually come back as one report, written in one
transaction. Everything is read through the agent's organization and
filtered by its group, so another organization's (or group's) run or job is not found.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

import flows
from flows.definition import trigger_options
from portal.agents import services, wake
from portal.agents.models import Agent, AgentJob
from portal.processflows import alerting, execution, polling
from portal.processflows.models import Deployment, RegistrationState, Run, RunStatus, StepRun
from portal.processflows.registration import processflow_url
from portal.processflows.runs import trigger_document
from portal.processflows.signing import signing_key, store_signing_key

#: Jobs in one answer at most.
MAX_JOBS = 10
#: The longest a long-poll is held (the agent asks for up to this).
MAX_WAIT_SECONDS = 25
#: A finished run's answer is kept this long for a finish sent again with the same lease.
FINISHED_TTL_SECONDS = 24 * 3600

LEASE_LOST = "lease lost"


class LeaseLost(Exception):
    """The lease the agent sent is no longer the run's: it must drop the run."""


def _lease_expiry():
    return timezone.now() + timedelta(seconds=settings.PORTAL_RUN_LEASE_SECONDS)


# --- Handing out work -----------------------------------------------------------------------


def _previous(runs: list[Run]) -> dict[int, list[dict]]:
    """The step records of earlier attempts, by run (a first attempt has none)."""
    again = [run.pk for run in runs if run.attempt > 1]
    found: dict[int, list[dict]] = {run_id: [] for run_id in again}
    if not again:
        return found
    for row in StepRun.objects.filter(run_id__in=again).order_by("run_id", "position"):
        found[row.run_id].append(
            {
                "position": row.position,
                "name": row.name,
                "status": row.status,
                "attempts": row.attempts,
                "request": row.request,
                "response_status": row.response_status,
                "output": row.output,
                "error": row.error,
                "duration_ms": row.duration_ms,
                "started_at": row.started_at,
                "finished_at": row.finished_at,
            }
        )
    return found


def _run_job(run: Run, previous: list[dict]) -> dict:
    flow = run.processflow
    return {
        "kind": "run",
        "id": f"run:{run.pk}",
        "run": {
            "id": run.pk,
            "uid": str(run.uid),
            "attempt": run.attempt,
            "lease": run.lease_owner,
            "lease_seconds": settings.PORTAL_RUN_LEASE_SECONDS,
            "processflow": {"id": flow.pk, "name": flow.name},
            "definition": run.version.definition,
            # Customer data the flow needs, sent over TLS to the agent that runs it.
            "trigger": trigger_document(run.event) if run.event_id else run.input,
            "previous": previous,
            "idempotency_prefix": str(run.uid),
            "purpose": f"processflow {flow.name!r} (run {run.pk})",
        },
    }


def _claim_runs(agent: Agent, limit: int) -> list[dict]:
    claimed = execution.claim_for_group(agent.organization_id, agent.group_id, limit, agent=agent)
    runs = [run for run in claimed if not execution.give_up_if_exhausted(run)]
    previous = _previous(runs)
    return [_run_job(run, previous.get(run.pk, [])) for run in runs]


def _job_message(job: AgentJob, agent: Agent) -> dict:
    deployment = job.deployment
    trigger = deployment.version.definition["trigger"]
    if job.kind == AgentJob.Kind.POLL:
        source = trigger.get("source") or {}
        return {
            "kind": "poll",
            "id": job.wire_id,
            "deployment": deployment.pk,
            "application": source.get("application", ""),
            "credential": source.get("credential", ""),
            "source": source,
            "cursor": (deployment.cursor or {}).get("agent") or {},
        }
    message = {
        "kind": job.kind,
        "id": job.wire_id,
        "deployment": deployment.pk,
        "application": trigger.get("application", ""),
        "credential": trigger.get("credential", ""),
    }
    if job.kind == AgentJob.Kind.UNSUBSCRIBE:
        message["subscription"] = job.payload.get("subscription", "")
        return message
    url = processflow_url(deployment.processflow)
    AgentJob.objects.for_tenant(job.organization_id).filter(pk=job.pk).update(
        payload={**job.payload, "url": url}
    )
    message.update(
        url=url,
        events=trigger.get("events", []),
        options=trigger_options(trigger),
        # The one secret the portal sends: it made it, and intake verifies with it.
        signing_key=signing_key(deployment, purpose=f"handed to agent {agent.name!r} to subscribe"),
    )  # fmt: skip
    return message


def _claim_jobs(agent: Agent, limit: int) -> list[dict]:
    now = timezone.now()
    jobs = AgentJob.objects.for_tenant(agent.organization_id)
    candidates = list(
        jobs.filter(group_id=agent.group_id, done_at__isnull=True)
        .exclude(lease_expires_at__gte=now)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    messages = []
    for job_id in candidates:
        taken = (
            jobs.filter(pk=job_id, done_at__isnull=True)
            .exclude(lease_expires_at__gte=now)
            .update(agent=agent, lease_expires_at=_lease_expiry())
        )
        if not taken:
            continue
        job = jobs.select_related("deployment__version", "deployment__processflow").get(pk=job_id)
        messages.append(_job_message(job, agent))
    return messages


def take_work(agent: Agent, *, limit: int = MAX_JOBS) -> list[dict]:
    """Lease up to ``limit`` jobs of the agent's group to it: subscribe/unsubscribe/poll
    jobs first (they are few and quick), then runs, oldest first."""
    messages = _claim_jobs(agent, limit)
    return messages + _claim_runs(agent, limit - len(messages))


def long_poll(
    agent: Agent, *, wait: float, limit: int = MAX_JOBS, gone: Callable[[], bool] = lambda: False
) -> list[dict]:
    """Work for ``agent``, waiting up to ``wait`` seconds (capped) for some to be queued.

    Each pass tries to lease work (two indexed reads when there is none). Between passes it
    blocks on the group's Redis wake-up (or sleeps half a second without Redis). Once
    ``gone()`` says the agent hung up (it was stopped or killed while its poll was held),
    nothing more is leased for this poll: work leased to a dead agent would wait for its
    lease to expire.
    """
    deadline = time.monotonic() + max(0.0, min(float(wait), MAX_WAIT_SECONDS))
    woken = False
    while True:
        if gone():
            if woken:  # the wake-up this poll took is another waiting agent's now
                wake.wake(agent.group_id)
            return []
        services.seen(agent)
        jobs = take_work(agent, limit=limit)
        if jobs:
            return jobs
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []
        woken = wake.wait(agent.group_id, remaining)


# --- Runs: reports, lease -------------------------------------------------------------


def agent_run(agent: Agent, run_id: int) -> Run:
    """The run ``run_id`` of the agent's group (``Run.DoesNotExist`` otherwise)."""
    return (
        Run.objects.for_tenant(agent.organization_id)
        .select_related("processflow__organization", "version")
        .get(pk=run_id, deployment__agent_group_id=agent.group_id)
    )


def _holding(run: Run, lease: object) -> bool:
    return (
        isinstance(lease, str)
        and bool(lease)
        and run.lease_owner == lease
        and run.status == RunStatus.RUNNING
    )


def _when(value):
    if value in (None, ""):
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError("started_at and finished_at are ISO 8601 times or null.")
    return parsed


def record_from(document: object) -> flows.StepRecord:
    """A step record from the agent's JSON (already redacted by its engine); ValueError
    saying what is wrong."""
    if not isinstance(document, dict):
        raise ValueError("record is an object of a step record's fields.")
    position = document.get("position")
    name = document.get("name")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise ValueError("record.position is the step's index.")
    if not isinstance(name, str) or not name:
        raise ValueError("record.name is the step's name.")
    status = document.get("status", RunStatus.RUNNING)
    if status not in RunStatus.values:
        raise ValueError(f"record.status is one of {', '.join(RunStatus.values)}.")
    attempts = document.get("attempts") or 0
    response_status = document.get("response_status")
    duration = document.get("duration_ms")
    for field, value in (("attempts", attempts), ("response_status", response_status),
                         ("duration_ms", duration)):  # fmt: skip
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ValueError(f"record.{field} is a whole number.")
    request = document.get("request") or {}
    if not isinstance(request, dict):
        raise ValueError("record.request is an object.")
    error = document.get("error") or ""
    return flows.StepRecord(
        position=position,
        name=name[:64],
        status=status,
        attempts=attempts,
        request=request,
        response_status=response_status,
        output=document.get("output") if document.get("output") is not None else {},
        error=error if isinstance(error, str) else str(error),
        duration_ms=duration,
        started_at=_when(document.get("started_at")),
        finished_at=_when(document.get("finished_at")),
    )


def renew_lease(agent: Agent, run_id: int, *, lease: object):
    """Renew the agent's lease of a run; returns the new expiry."""
    run = agent_run(agent, run_id)
    if not isinstance(lease, str) or not lease:
        raise LeaseLost
    expires = _lease_expiry()
    renewed = (
        Run.objects.for_tenant(agent.organization_id)
        .filter(pk=run.pk, lease_owner=lease, status=RunStatus.RUNNING)
        .update(lease_expires_at=expires)
    )
    if not renewed:
        raise LeaseLost
    return expires


def _finished_key(run: Run, lease: str) -> str:
    return (
        f"agents:finished:{run.organization_id}:{run.pk}:"
        + hashlib.sha256(lease.encode()).hexdigest()[:32]
    )


def _conclusion(finish: object) -> dict:
    """The keywords of ``execution.conclude`` from a report's ``finish``; ValueError."""
    if not isinstance(finish, dict):
        raise ValueError("finish is an object: status, output, error, retryable, retry_after.")
    outcome = finish.get("status")
    if outcome not in ("succeeded", "failed"):
        raise ValueError("finish.status is succeeded or failed.")
    retry_after = finish.get("retry_after")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int | float)
    ):
        raise ValueError("finish.retry_after is a number of seconds or null.")
    error = finish.get("error") or ""
    return {
        "succeeded": outcome == "succeeded",
        "output": finish.get("output"),
        "error": error if isinstance(error, str) else str(error),
        "retryable": finish.get("retryable") is True,
        "retry_after": retry_after,
    }


def report_run(agent: Agent, run_id: int, *, lease: object, steps: object, finish: object) -> str:
    """Store what the agent reports of a run it holds: step records (already redacted by
    its engine), written as the Cloud worker writes its own, and, with ``finish``, the
    run's outcome, concluded with the Cloud worker's logic in the same transaction.
    Returns the run's status. ``Run.DoesNotExist`` for a run not of the agent's group,
    ValueError for a malformed report, :class:`LeaseLost` (nothing written) when the lease
    is no longer the run's. Sent again with the same lease (the agent never saw the
    answer), a finished run's report answers the same status and changes nothing."""
    run = agent_run(agent, run_id)  # 404 before any 400
    if not isinstance(steps, list):
        raise ValueError("steps is a list of step records.")
    records = [record_from(document) for document in steps]
    if any(record.position >= len(run.version.definition["steps"]) for record in records):
        raise ValueError("record.position is not a step of the run's definition.")
    conclusion = None if finish is None else _conclusion(finish)
    if conclusion is not None and isinstance(lease, str) and lease:
        done = cache.get(_finished_key(run, lease))
        if done is not None:
            return done
    if not _holding(run, lease):
        raise LeaseLost
    positions = {record.position for record in records}
    rows = {row.position: row for row in StepRun.objects.filter(run=run, position__in=positions)}
    host = execution.CloudHost(run, rows)
    for record in records:
        host.keep(record)
    if conclusion is None:
        with transaction.atomic():
            held = (
                Run.objects.for_tenant(agent.organization_id)
                .select_for_update()
                .filter(pk=run.pk, lease_owner=lease, status=RunStatus.RUNNING)
            )
            if not held.exists():
                raise LeaseLost
            host.save_steps()
        return RunStatus.RUNNING
    status = execution.conclude(run, host=host, **conclusion)
    if status is None:
        raise LeaseLost
    cache.set(_finished_key(run, lease), status, FINISHED_TTL_SECONDS)
    return status


# --- Job results ------------------------------------------------------------------------------


def agent_job(agent: Agent, wire_id: str) -> AgentJob:
    """The job ``kind:deployment:n`` of the agent's group (``AgentJob.DoesNotExist`` else)."""
    kind, _, rest = (wire_id or "").partition(":")
    deployment_id, _, number = rest.partition(":")
    if kind not in AgentJob.Kind.values or not deployment_id.isdigit() or not number.isdigit():
        raise AgentJob.DoesNotExist
    return (
        AgentJob.objects.for_tenant(agent.organization_id)
        .select_related("deployment__version", "deployment__processflow", "deployment__agent_group")
        .get(pk=int(number), deployment_id=int(deployment_id), kind=kind, group_id=agent.group_id)
    )


def _text(value, limit: int = 2000) -> str:
    return (value if isinstance(value, str) else "" if value is None else str(value))[:limit]


def _subscribed(job: AgentJob, result: dict) -> None:
    deployments = Deployment.objects.for_tenant(job.organization_id)
    deployment = deployments.select_for_update().get(pk=job.deployment_id)
    if not result.get("ok"):
        message = _text(result.get("error")) or "The agent could not subscribe."
        deployment.registration_state = RegistrationState.FAILED
        deployment.registration_message = message
        deployment.save(update_fields=["registration_state", "registration_message"])
        alerting.subscription_trouble(
            deployment, f"The webhook subscription could not be registered: {message}"
        )
        return
    uri = _text(result.get("subscription"), 500)
    # An application that makes the signing key itself answers it to the agent.
    if isinstance(result.get("signing_key"), str) and result["signing_key"]:
        store_signing_key(deployment, result["signing_key"])
    deployment.subscription_uri = uri
    deployment.registered_url = job.payload.get("url") or processflow_url(deployment.processflow)
    deployment.reconciled_at = timezone.now()
    deployment.registration_state = RegistrationState.ACTIVE
    deployment.registration_message = (
        f"Subscribed by agent {job.agent.name!r} of group {deployment.agent_group.name}."
    )
    deployment.save()
    if deployment.state != Deployment.State.ACTIVE:
        # Undeployed while the agent subscribed: the subscription must go again.
        from portal.agents.work import queue_unsubscribe

        queue_unsubscribe(deployment)


def _unsubscribed(job: AgentJob, result: dict) -> None:
    deployments = Deployment.objects.for_tenant(job.organization_id)
    deployment = deployments.select_for_update().get(pk=job.deployment_id)
    if result.get("ok"):
        if deployment.subscription_uri == job.payload.get("subscription"):
            deployment.subscription_uri = ""
        deployment.registration_state = RegistrationState.REMOVED
        deployment.registration_message = "The agent deleted the subscription."
    else:
        deployment.registration_state = RegistrationState.FAILED
        deployment.registration_message = _text(result.get("error")) or (
            "The agent could not delete the subscription."
        )
    deployment.save(
        update_fields=["subscription_uri", "registration_state", "registration_message"]
    )


def _polled(job: AgentJob, result: dict) -> None:
    deployment = job.deployment
    if not result.get("ok"):
        polling.record_error(deployment, _text(result.get("error")) or "The agent's poll failed.")
        return
    records = result.get("records")
    if not isinstance(records, list):
        raise ValueError("records is the list of records the source answered.")
    cursor = result.get("cursor")
    source = deployment.version.definition["trigger"].get("source") or {}
    polling.store_records(
        deployment,
        records[: polling.POLL_LIMIT],
        name=source.get("action", "poll"),
        agent_cursor=cursor if isinstance(cursor, dict) else {},
    )


def job_result(agent: Agent, wire_id: str, result: object) -> bool:
    """Apply a job's result once; returns False if it was applied before (nothing done)."""
    job = agent_job(agent, wire_id)  # 404 before any 400
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise ValueError('A result is {"ok": true, ...} or {"ok": false, "error": "…"}.')
    with transaction.atomic():
        locked = (
            AgentJob.objects.for_tenant(agent.organization_id)
            .select_for_update(of=("self",))
            .select_related("deployment__version", "deployment__processflow")
            .get(pk=job.pk)
        )
        if locked.done_at is not None:
            return False
        locked.agent = agent
        if locked.kind == AgentJob.Kind.SUBSCRIBE:
            _subscribed(locked, result)
        elif locked.kind == AgentJob.Kind.UNSUBSCRIBE:
            _unsubscribed(locked, result)
        else:
            _polled(locked, result)
        kept = {k: v for k, v in result.items() if k in ("ok", "error", "subscription")}
        locked.done_at = timezone.now()
        locked.result = kept
        locked.agent = agent
        locked.save(update_fields=["done_at", "result", "agent"])
    return True
