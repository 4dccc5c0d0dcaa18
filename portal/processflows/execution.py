"""Executing runs: claim with a lease, run steps in order, record each, retry with backoff.

A run is claimed by an atomic UPDATE, so two workers (a redelivered task and the original,
or the sweeper's re-queue) never execute it at once. Steps that succeeded are not repeated
when a run resumes after its worker died; a step is re-sent with the same idempotency key
(run uid + step name), so a destination that honours ``Idempotency-Key`` sees it once.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.processflows import registration, templating
from portal.processflows.models import Run, RunStatus, StepRun
from portal.processflows.redaction import redact
from portal.vault import applications
from portal.vault.models import Credential

logger = logging.getLogger(__name__)


class StepFailed(Exception):
    """A step could not complete; ``retryable`` says whether trying again may help, and
    ``retry_after`` how long the application asked us to wait (seconds), if it did."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        request: dict | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.request = request or {}


def _lease() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=settings.PORTAL_RUN_LEASE_SECONDS)


def claim(run_id: int) -> Run | None:
    """Take the run for this worker, or None if it is done, not due, or held by another.

    The lease is a fresh token per claim (not a process id: prefork children share their
    parent's), so a worker whose lease expired and was taken over can no longer write.
    """
    now = timezone.now()
    token = uuid.uuid4().hex
    due = Q(status__in=[RunStatus.QUEUED, RunStatus.RETRYING]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    abandoned = Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
    claimed = (
        Run.objects.filter(pk=run_id)
        .filter((due & free) | abandoned)
        .update(
            status=RunStatus.RUNNING,
            lease_owner=token,
            lease_expires_at=_lease(),
            attempt=F("attempt") + 1,
            started_at=Coalesce(F("started_at"), now),
        )
    )
    if not claimed:
        return None
    return Run.objects.select_related("version", "processflow__organization", "event").get(
        pk=run_id
    )


def _renew(run: Run) -> bool:
    """Extend the lease before a step; False if another worker took the run meanwhile."""
    return bool(
        Run.objects.filter(pk=run.pk, lease_owner=run.lease_owner, status=RunStatus.RUNNING).update(
            lease_expires_at=_lease()
        )
    )


def _finish(run: Run, **fields) -> None:
    fields.update(lease_owner="", lease_expires_at=None)
    Run.objects.filter(pk=run.pk, lease_owner=run.lease_owner).update(**fields)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff between run attempts: base, 2x base, 4x base... capped."""
    base = settings.PORTAL_RUN_RETRY_BASE_SECONDS
    return min(base * (2 ** max(0, attempt - 1)), settings.PORTAL_RUN_RETRY_MAX_SECONDS)


def execute(run_id: int) -> str | None:
    """Claim and execute a run; returns its new status, or None if it was not ours to run."""
    run = claim(run_id)
    if run is None:
        return None
    definition = run.version.definition
    from portal.processflows.runs import trigger_document

    # The unredacted trigger document exists only here, in the worker's memory.
    context = {"trigger": trigger_document(run.event) if run.event_id else run.input, "steps": {}}
    done = {s.position: s for s in StepRun.objects.filter(run=run, status=RunStatus.SUCCEEDED)}
    output = {}
    for position, step in enumerate(definition.get("steps", [])):
        name = step["name"]
        if position in done:
            context["steps"][name] = output = done[position].output
            continue
        if not _renew(run):
            return None
        record, _ = StepRun.objects.get_or_create(
            run=run, position=position, defaults={"name": name}
        )
        started = time.monotonic()
        record.started_at = timezone.now()
        record.attempts += 1
        try:
            output, summary = run_step(run, step, context)
        except StepFailed as failure:
            record.status = RunStatus.FAILED
            record.error = str(failure)
            record.request = failure.request
            record.response_status = failure.status
            record.duration_ms = int((time.monotonic() - started) * 1000)
            record.finished_at = timezone.now()
            record.save()
            return _fail_or_retry(run, failure, name)
        record.status = RunStatus.SUCCEEDED
        record.error = ""
        record.request = summary.get("request", {})
        record.response_status = summary.get("status")
        record.output = redact(output)
        record.duration_ms = int((time.monotonic() - started) * 1000)
        record.finished_at = timezone.now()
        record.save()
        context["steps"][name] = output
    _finish(
        run,
        status=RunStatus.SUCCEEDED,
        output=redact(output if isinstance(output, dict) else {"result": output}),
        error="",
        finished_at=timezone.now(),
        next_attempt_at=None,
    )
    return RunStatus.SUCCEEDED


def _fail_or_retry(run: Run, failure: StepFailed, step_name: str) -> str:
    message = f"Step {step_name!r}: {failure}"
    if failure.retryable and run.attempt < settings.PORTAL_RUN_MAX_ATTEMPTS:
        delay = max(backoff_seconds(run.attempt), failure.retry_after or 0)
        _finish(
            run,
            status=RunStatus.RETRYING,
            error=message,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
        )
        from portal.processflows.outbox import publish_run

        publish_run(run.pk, countdown=delay)
        return RunStatus.RETRYING
    _finish(run, status=RunStatus.FAILED, error=message, finished_at=timezone.now())
    return RunStatus.FAILED


def run_step(run: Run, step: dict, context: dict) -> tuple[object, dict]:
    """Execute one step; returns (output, summary). Raises StepFailed."""
    kind = step.get("type", "action")
    if kind == "map":
        try:
            return templating.render(step.get("mapping", {}), context), {}
        except templating.TemplateError as error:
            raise StepFailed(str(error), retryable=False) from None
    credential = (
        Credential.objects.for_tenant(run.processflow.organization)
        .select_related("data_key")
        .filter(pk=step.get("credential"))
        .first()
    )
    if credential is None:
        raise StepFailed(
            "Its credential was deleted; choose another and deploy again.", retryable=False
        )
    document = None
    if step.get("document") not in (None, ""):
        try:
            document = templating.render(step["document"], context)
        except templating.TemplateError as error:
            raise StepFailed(str(error), retryable=False) from None
    filters = [list(row) for row in step.get("filters", [])]
    target = registration.callback_target(
        run.organization_id, credential.application, step["action"], filters
    )
    if target is not None:
        # The seed's manual way: this step subscribes another flow's Processflow URL, whose
        # deliveries are verified with that flow's signing key, so the application gets it.
        filters = registration.with_signing_key(credential.application, target, filters)
    result = applications.run_action(
        credential,
        step["action"],
        filters=filters,
        context=context,
        document=document,
        idempotency_key=f"{run.uid}:{step['name']}",
        purpose=f"processflow {run.processflow.name!r}, run {run.pk}",
    )
    del filters
    if not result.ok:
        raise StepFailed(
            result.message,
            retryable=result.retryable,
            status=result.status,
            retry_after=result.retry_after,
            request=result.request,
        )
    if target is not None:
        registration.record_manual_subscription(
            target,
            (result.data or {}).get("resource") or {},
            by=f"processflow {run.processflow.name!r} (run {run.pk})",
        )
    return result.data, {"request": result.request, "status": result.status}
