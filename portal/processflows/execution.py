"""Executing runs on the Cloud agent: the portal's workers as a host of the flow engine.

The engine (``flows``) runs the steps; this module holds what only the portal has. A run is
claimed by an atomic UPDATE with a fresh lease token, so two workers (a redelivered task
and the original, or the sweeper's re-queue) never execute it at once; the lease is renewed
while it runs and checked before every action. Credentials are opened through the vault's
audited opener, step records are ``StepRun`` rows, and a failed run is retried with backoff
through the broker.
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

import connectors
import flows
from flows.runner import LOST
from portal.applications.runtime import runtime
from portal.processflows import alerting, dispatch, registration
from portal.processflows.models import Run, RunStatus, StepRun
from portal.processflows.runs import trigger_document
from portal.vault.opener import open_credential
from portal.vault.selectors import credential_for_use

CREDENTIAL_DELETED = "Its credential was deleted; choose another and deploy again."
_RECORD_FIELDS = (
    "status", "attempts", "request", "response_status", "output", "error",
    "duration_ms", "started_at", "finished_at",
)  # fmt: skip


def retry_policy() -> flows.RetryPolicy:
    """Retries of runs as the settings configure them."""
    return flows.RetryPolicy(
        max_attempts=settings.PORTAL_RUN_MAX_ATTEMPTS,
        base_seconds=settings.PORTAL_RUN_RETRY_BASE_SECONDS,
        max_seconds=settings.PORTAL_RUN_RETRY_MAX_SECONDS,
    )


def _lease() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=settings.PORTAL_RUN_LEASE_SECONDS)


def claimable(now) -> Q:
    """Runs a claim may take at ``now``: waiting and due with no live lease, or running with
    an expired one (its worker or agent is gone)."""
    due = Q(status__in=[RunStatus.QUEUED, RunStatus.RETRYING]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    abandoned = Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
    return (due & free) | abandoned


def claim(organization_id: int, run_id: int) -> Run | None:
    """Take the run for this worker, or None if it is done, not due, or held by another.

    The lease is a fresh token per claim (not a process id: prefork children share their
    parent's), so a worker whose lease expired and was taken over can no longer write.
    """
    now = timezone.now()
    token = uuid.uuid4().hex
    runs = Run.objects.for_tenant(organization_id)
    claimed = (
        runs.filter(pk=run_id)
        .filter(claimable(now))
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
    return runs.select_related("version", "processflow__organization", "event", "deployment").get(
        pk=run_id
    )


def _finish(run: Run, **fields) -> bool:
    """Record the run's outcome and let go of it; False if it was no longer ours."""
    fields.update(lease_owner="", lease_expires_at=None)
    return bool(
        Run.objects.for_tenant(run.organization_id)
        .filter(pk=run.pk, lease_owner=run.lease_owner)
        .update(**fields)
    )


class CloudHost:
    """The engine's host in a Celery worker, for one claimed run.

    Until the lease expires nobody else can take the run (claims and the sweeper both wait
    for the expiry), so :meth:`hold` renews it only once half of it has passed: renewing
    earlier would only cost a write per step.
    """

    def __init__(self, run: Run, rows: dict[int, StepRun]):
        self.run = run
        self.rows = rows
        self.renewed = time.monotonic()

    @contextmanager
    def open_credential(self, ref, *, application, purpose):
        credential = credential_for_use(self.run.processflow.organization, ref)
        if credential is None:
            raise flows.CredentialUnavailable(CREDENTIAL_DELETED)
        with open_credential(credential, purpose=purpose) as opened:
            yield opened

    def runtime(self, app: connectors.Connector) -> connectors.Runtime:
        return runtime(app)

    def callback_target(self, app: connectors.Connector, url: str):
        return registration.manual_target(
            self.run.organization_id,
            url,
            by=f"processflow {self.run.processflow.name!r} (run {self.run.pk})",
        )

    def now(self):
        return timezone.now()

    def hold(self) -> bool:
        if time.monotonic() - self.renewed < settings.PORTAL_RUN_LEASE_SECONDS / 2:
            return True
        self.renewed = time.monotonic()
        return bool(
            Run.objects.for_tenant(self.run.organization_id)
            .filter(pk=self.run.pk, lease_owner=self.run.lease_owner, status=RunStatus.RUNNING)
            .update(lease_expires_at=_lease())
        )

    def record_step(self, record: flows.StepRecord) -> None:
        row = self.rows.get(record.position)
        if row is None:
            row = self.rows[record.position] = StepRun(
                run=self.run, position=record.position, name=record.name
            )
        for name in _RECORD_FIELDS:
            setattr(row, name, getattr(record, name))
        row.save()


def _record(row: StepRun) -> flows.StepRecord:
    return flows.StepRecord(
        position=row.position, name=row.name, **{n: getattr(row, n) for n in _RECORD_FIELDS}
    )


def give_up_if_exhausted(run: Run) -> bool:
    """Fail a just-claimed run that has started more attempts than allowed (each earlier one
    lost its worker or agent); True if it was failed, and must not be executed."""
    policy = retry_policy()
    if not policy.exhausted(run.attempt):
        return False
    error = (
        f"Stopped after {policy.max_attempts} attempts that did not "
        "finish (their worker stopped). Replay it once the cause is fixed."
    )
    if _finish(run, status=RunStatus.FAILED, error=error, finished_at=timezone.now()):
        alerting.run_failed(run, error)
    return True


def conclude(
    run: Run,
    *,
    succeeded: bool,
    output=None,
    error: str = "",
    retryable: bool = False,
    retry_after: float | None = None,
) -> str | None:
    """Apply a claimed run's outcome, wherever it ran (a Cloud worker or an agent): success,
    a retry with backoff, or failure for good with its alert. Returns the new status, or
    None if the lease was no longer ``run``'s (nothing written)."""
    if succeeded:
        finished = _finish(
            run,
            status=RunStatus.SUCCEEDED,
            output=output if output is not None else {},
            error="",
            finished_at=timezone.now(),
            next_attempt_at=None,
        )
        return RunStatus.SUCCEEDED if finished else None
    delay = retry_policy().next_delay(
        retryable=retryable, attempt=run.attempt, retry_after=retry_after
    )
    if delay is not None:
        if not _finish(
            run,
            status=RunStatus.RETRYING,
            error=error,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
        ):
            return None
        dispatch.publish_run(run.organization_id, run.pk, countdown=delay)
        return RunStatus.RETRYING
    if not _finish(run, status=RunStatus.FAILED, error=error, finished_at=timezone.now()):
        return None
    alerting.run_failed(run, error)
    return RunStatus.FAILED


def execute(organization_id: int, run_id: int) -> str | None:
    """Claim and execute a run; returns its new status, or None if it was not ours to run."""
    run = claim(organization_id, run_id)
    if run is None:
        return None
    if run.deployment is not None and run.deployment.agent_group_id is not None:
        # Not the broker's (a stray message): an agent of its group takes it.
        waiting = RunStatus.RETRYING if run.attempt > 1 else RunStatus.QUEUED
        _finish(run, status=waiting, attempt=F("attempt") - 1)
        return None
    if give_up_if_exhausted(run):
        return RunStatus.FAILED
    rows = {row.position: row for row in StepRun.objects.filter(run=run)}
    result = flows.execute_steps(
        run.version.definition,
        # The unredacted trigger document exists only here, in the worker's memory.
        trigger_document(run.event) if run.event_id else run.input,
        host=CloudHost(run, rows),
        previous={position: _record(row) for position, row in rows.items()},
        idempotency_prefix=str(run.uid),
        purpose=f"processflow {run.processflow.name!r}, run {run.pk}",
    )
    if result.status == LOST:
        return None
    if result.status == RunStatus.SUCCEEDED:
        return conclude(run, succeeded=True, output=result.output)
    failure = result.failure
    return conclude(
        run,
        succeeded=False,
        error=result.error,
        retryable=failure.retryable,
        retry_after=failure.retry_after,
    )
