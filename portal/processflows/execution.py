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
from portal.processflows.signing import signing_key
from portal.vault import applications, crypto
from portal.vault.keys import open_secrets
from portal.vault.models import Credential
from portal.vault.selectors import credential_for_use

logger = logging.getLogger(__name__)

# Secret values shorter than this are not searched for in stored documents: a three-letter
# password would blank out every text that happens to contain those letters.
MIN_SECRET_LENGTH = 8


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


class _Lease:
    """This worker's hold on a run, renewed before a step once half of it has passed.

    Until the lease expires nobody else can take the run (claims and the sweeper both wait
    for the expiry), so renewing earlier would only cost a write per step.
    """

    def __init__(self, run: Run):
        self.run = run
        self.renewed = time.monotonic()

    def hold(self) -> bool:
        if time.monotonic() - self.renewed < settings.PORTAL_RUN_LEASE_SECONDS / 2:
            return True
        self.renewed = time.monotonic()
        return _renew(self.run)


def _finish(run: Run, **fields) -> bool:
    """Record the run's outcome and let go of it; False if it was no longer ours."""
    fields.update(lease_owner="", lease_expires_at=None)
    return bool(Run.objects.filter(pk=run.pk, lease_owner=run.lease_owner).update(**fields))


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff between run attempts: base, 2x base, 4x base... capped."""
    base = settings.PORTAL_RUN_RETRY_BASE_SECONDS
    return min(base * (2 ** max(0, attempt - 1)), settings.PORTAL_RUN_RETRY_MAX_SECONDS)


def execute(run_id: int) -> str | None:
    """Claim and execute a run; returns its new status, or None if it was not ours to run."""
    run = claim(run_id)
    if run is None:
        return None
    if run.attempt > settings.PORTAL_RUN_MAX_ATTEMPTS:
        # Every earlier attempt ended without a verdict (its worker died): a run that kills
        # its worker must not be taken over forever.
        _finish(
            run,
            status=RunStatus.FAILED,
            error=f"Stopped after {settings.PORTAL_RUN_MAX_ATTEMPTS} attempts that did not "
            "finish (their worker stopped). Replay it once the cause is fixed.",
            finished_at=timezone.now(),
        )
        return RunStatus.FAILED
    definition = run.version.definition
    from portal.processflows.runs import trigger_document

    # The unredacted trigger document exists only here, in the worker's memory.
    context = {"trigger": trigger_document(run.event) if run.event_id else run.input, "steps": {}}
    records = {record.position: record for record in StepRun.objects.filter(run=run)}
    lease = _Lease(run)
    secrets: set[str] = set()
    output = {}
    for position, step in enumerate(definition.get("steps", [])):
        name, action = step["name"], step.get("type", "action") != "map"
        record = records.get(position) or StepRun(run=run, position=position, name=name)
        if action and record.status == RunStatus.SUCCEEDED:
            # An action that succeeded before the worker died is not sent again. Its stored
            # answer is redacted, which is what later steps get; map steps are recomputed
            # instead, so a resumed run forwards exactly what an uninterrupted one would.
            context["steps"][name] = output = record.output
            continue
        started = time.monotonic()
        record.status = RunStatus.RUNNING
        record.started_at = timezone.now()
        record.attempts += 1
        if action:
            if not lease.hold():
                return None
            record.save()  # shown as running while the application is called
        try:
            output, summary = run_step(run, step, context, secrets=secrets)
        except StepFailed as failure:
            _record_failure(record, failure, started, secrets)
            return _fail_or_retry(run, failure, name, secrets)
        except Exception as error:  # a bug or an outage of our own: bounded retries
            logger.exception("run %s, step %r failed unexpectedly", run.pk, name)
            failure = StepFailed(
                f"The step stopped on an internal error ({type(error).__name__}).",
                retryable=True,
            )
            _record_failure(record, failure, started, secrets)
            return _fail_or_retry(run, failure, name, secrets)
        record.status = RunStatus.SUCCEEDED
        record.error = ""
        record.request = redact(summary.get("request", {}), secrets=secrets)
        record.response_status = summary.get("status")
        record.output = redact(output, secrets=secrets)
        record.duration_ms = int((time.monotonic() - started) * 1000)
        record.finished_at = timezone.now()
        record.save()
        context["steps"][name] = output
    finished = _finish(
        run,
        status=RunStatus.SUCCEEDED,
        output=redact(output if isinstance(output, dict) else {"result": output}, secrets=secrets),
        error="",
        finished_at=timezone.now(),
        next_attempt_at=None,
    )
    return RunStatus.SUCCEEDED if finished else None


def _record_failure(record: StepRun, failure: StepFailed, started: float, secrets) -> None:
    record.status = RunStatus.FAILED
    record.error = redact(str(failure), secrets=secrets)
    record.request = redact(failure.request, secrets=secrets)
    record.response_status = failure.status
    record.duration_ms = int((time.monotonic() - started) * 1000)
    record.finished_at = timezone.now()
    record.save()


def _fail_or_retry(run: Run, failure: StepFailed, step_name: str, secrets=()) -> str:
    message = redact(f"Step {step_name!r}: {failure}", secrets=secrets)
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


def _secret_values(credential: Credential) -> set[str]:
    """The credential's secret values, to keep them out of what a run stores (an API that
    echoes the token it was sent under an innocent key would otherwise have it stored)."""
    try:
        values = open_secrets(credential).values()
    except crypto.VaultError:
        return set()  # then the action cannot run either, and says so
    return {value for value in values if len(value) >= MIN_SECRET_LENGTH}


def run_step(
    run: Run, step: dict, context: dict, *, secrets: set[str] | None = None
) -> tuple[object, dict]:
    """Execute one step; returns (output, summary). Raises StepFailed.

    ``secrets`` collects the secret values of the credentials used, for redaction.
    """
    kind = step.get("type", "action")
    if kind == "map":
        try:
            return templating.render(step.get("mapping", {}), context), {}
        except templating.TemplateError as error:
            raise StepFailed(str(error), retryable=False) from None
    credential = credential_for_use(run.processflow.organization, step.get("credential"))
    if credential is None:
        raise StepFailed(
            "Its credential was deleted; choose another and deploy again.", retryable=False
        )
    if secrets is not None:
        secrets |= _secret_values(credential)
    document = None
    if step.get("document") not in (None, ""):
        try:
            document = templating.render(step["document"], context)
        except templating.TemplateError as error:
            raise StepFailed(str(error), retryable=False) from None
    filters = [list(row) for row in step.get("filters", [])]
    try:
        target = registration.callback_target(
            run.organization_id, credential.application, step["action"], filters
        )
    except registration.CallbackNotDeployed as error:
        raise StepFailed(str(error), retryable=False) from None
    if target is not None:
        # The seed's manual way: this step subscribes another flow's Processflow URL, whose
        # deliveries are verified with that flow's signing key, so the application gets it.
        try:
            filters = registration.with_signing_key(credential.application, target, filters)
        except registration.TypedSigningKey as error:
            raise StepFailed(str(error), retryable=False) from None
        if secrets is not None and (key := signing_key(target)):
            secrets.add(key)

    def send():
        return applications.run_action(
            credential,
            step["action"],
            filters=filters,
            context=context,
            document=document,
            idempotency_key=f"{run.uid}:{step['name']}",
            purpose=f"processflow {run.processflow.name!r}, run {run.pk}",
        )

    result = send()
    if target is not None and result.status == 409:
        # Subscribing again (a re-run of the subscribing flow): the existing subscription
        # may hold another key, so it is replaced, as automatic registration does.
        removed = registration.remove_subscriptions_to(
            credential,
            registration.processflow_url(target.processflow),
            dict(filters).get("scope") or "organization",
        )
        if removed.ok:
            result = send()
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
