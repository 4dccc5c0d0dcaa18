"""Executing runs on the Cloud agent: the portal's workers as a host of the flow engine.

The engine (``flows``) runs the steps; this module holds what only the portal has. A run is
claimed by an atomic UPDATE with a fresh lease token, so two workers (a redelivered task
and the original, or the sweeper's re-queue) never execute it at once; the lease is renewed
while it runs and checked before every action. Credentials are opened through the vault's
audited opener, step records are ``StepRun`` rows, and a failed run is retried with backoff
through the broker.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

import connectors
import flows
from flows.records import RUNNING
from flows.runner import LOST
from portal.applications.runtime import runtime
from portal.ops import logcontext, metrics
from portal.processflows import alerting, dispatch, registration
from portal.processflows.models import Run, RunStatus, StepRun
from portal.processflows.runs import trigger_document
from portal.vault.opener import open_credential
from portal.vault.selectors import credential_for_use

logger = logging.getLogger(__name__)

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


def claim_for_group(organization_id: int, group_id: int, limit: int, **fields) -> list[Run]:
    """Take up to ``limit`` runs of the agent group's deployments that are due and free (or
    abandoned by a dead agent), oldest first, for whoever asks (an agent of the group), in
    one transaction; returns them with their version, flow, event and deployment.

    Rows another agent is claiming at this moment are skipped (``SKIP LOCKED``), not waited
    for. One fresh token is the lease of the whole claim (not a process id: an agent whose
    lease expired and was taken over can no longer write); ``fields`` are set with it (who
    took the runs).
    """
    if limit <= 0:
        return []
    now = timezone.now()
    token = uuid.uuid4().hex
    runs = Run.objects.for_tenant(organization_id)
    with transaction.atomic():
        ids = list(
            runs.filter(deployment__agent_group_id=group_id)
            .filter(claimable(now))
            .order_by("created_at", "pk")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        runs.filter(pk__in=ids).update(
            status=RunStatus.RUNNING,
            lease_owner=token,
            lease_expires_at=_lease(),
            attempt=F("attempt") + 1,
            started_at=Coalesce(F("started_at"), now),
            **fields,
        )
    return list(
        runs.select_related("version", "processflow__organization", "event", "deployment")
        .filter(pk__in=ids)
        .order_by("created_at", "pk")
    )


def claim_runs(refs: Iterable[tuple[int, int]]) -> list[Run]:
    """Take each ``(organization_id, run_id)`` that is due and free (or abandoned by a dead
    worker) for this Cloud worker, in one transaction; returns the runs taken, each with its
    version, flow and event. Runs of a deployment on an agent group are never taken here:
    only an agent of the group claims them (:func:`claim_for_group`).

    Rows another worker is claiming at this moment are skipped (``SKIP LOCKED``), not waited
    for: that worker takes them. One fresh lease token stands for the whole claim.
    """
    by_organization: dict[int, list[int]] = {}
    for organization_id, run_id in refs:
        by_organization.setdefault(organization_id, []).append(run_id)
    if not by_organization:
        return []
    now = timezone.now()
    token = uuid.uuid4().hex
    taken: dict[int, list[int]] = {}
    with transaction.atomic():
        for organization_id, run_ids in by_organization.items():
            runs = Run.objects.for_tenant(organization_id)
            ids = list(
                runs.filter(pk__in=run_ids)
                .filter(claimable(now))
                .exclude(deployment__agent_group__isnull=False)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", flat=True)
            )
            if not ids:
                continue
            runs.filter(pk__in=ids).update(
                status=RunStatus.RUNNING,
                lease_owner=token,
                lease_expires_at=_lease(),
                attempt=F("attempt") + 1,
                started_at=Coalesce(F("started_at"), now),
            )
            taken[organization_id] = ids
    claimed: list[Run] = []
    for organization_id, ids in taken.items():
        claimed.extend(
            Run.objects.for_tenant(organization_id)
            .select_related("version", "processflow__organization", "event")
            .filter(pk__in=ids)
            .order_by("pk")
        )
    return claimed


def _finish(run: Run, **fields) -> bool:
    """Record the run's outcome and let go of it; False if it was no longer ours."""
    fields.update(lease_owner="", lease_expires_at=None)
    finished = bool(
        Run.objects.for_tenant(run.organization_id)
        .filter(pk=run.pk, lease_owner=run.lease_owner)
        .update(**fields)
    )
    if finished:  # metrics (observability): count the outcome once, by whoever recorded it
        metrics.run_ended(
            fields["status"], started_at=run.started_at, finished_at=fields.get("finished_at")
        )
    return finished


class CloudHost:
    """The engine's host in a Celery worker, for one claimed run.

    Until the lease expires nobody else can take the run (claims and the sweeper both wait
    for the expiry), so :meth:`hold` renews it only once half of it has passed: renewing
    earlier would only cost a write per step.
    """

    def __init__(self, run: Run, rows: dict[int, StepRun], credentials: dict | None = None):
        self.run = run
        self.rows = rows
        self.unsaved: dict[int, StepRun] = {}
        self.renewed = time.monotonic()
        # Credentials read for the runs of one batch, shared by them: the read cost a fifth
        # of a run's CPU. Each use is still opened (decrypted) and audited on its own.
        self.credentials = {} if credentials is None else credentials

    @contextmanager
    def open_credential(self, ref, *, application, purpose):
        key = (self.run.organization_id, ref) if isinstance(ref, int | str) else None
        credential = self.credentials.get(key) if key else None
        if credential is None:
            credential = credential_for_use(self.run.processflow.organization, ref)
            if credential is None:
                raise flows.CredentialUnavailable(CREDENTIAL_DELETED)
            if key:
                self.credentials[key] = credential
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
        # Kept in memory until an action is about to call its application (its "running"
        # record, and what came before, must be on disk before the call) or the run ends
        # (written with the run's outcome, in one transaction): a map step costs no write.
        self.keep(record)
        if record.status == RUNNING:
            self.save_steps()

    def keep(self, record: flows.StepRecord) -> None:
        """Hold a step record for the next :meth:`save_steps` (a later record of the same
        step replaces it): how an agent's report of several records is written at once."""
        row = self.rows.get(record.position)
        if row is None:
            row = self.rows[record.position] = StepRun(
                run=self.run, position=record.position, name=record.name
            )
        for name in _RECORD_FIELDS:
            setattr(row, name, getattr(record, name))
        self.unsaved[record.position] = row
        if record.status != RUNNING:  # metrics (observability): a finished attempt
            step = self.run.version.definition["steps"][record.position]
            metrics.step_ended(step, status=record.status, duration_ms=record.duration_ms)

    def save_steps(self) -> None:
        """Write the step records not written yet: new ones in one INSERT."""
        rows, self.unsaved = list(self.unsaved.values()), {}
        new = [row for row in rows if row.pk is None]
        if new:
            StepRun.objects.bulk_create(new)
        for row in rows:
            if not any(row is made for made in new):
                row.save(update_fields=_RECORD_FIELDS)


def _record(row: StepRun) -> flows.StepRecord:
    return flows.StepRecord(
        position=row.position, name=row.name, **{n: getattr(row, n) for n in _RECORD_FIELDS}
    )


def execute(organization_id: int, run_id: int) -> str | None:
    """Claim and execute a run; returns its new status, or None if it was not ours to run."""
    claimed = claim_runs([(organization_id, run_id)])
    return execute_claimed(claimed[0]) if claimed else None


def execute_many(refs: Iterable[tuple[int, int]], *, wait: bool = True) -> list[tuple[int, int]]:
    """Claim the runs ``(organization_id, run_id)`` together and execute those taken on
    this process's run threads, ``PORTAL_WORKER_RUN_THREADS`` at a time (their steps
    mostly wait on remote APIs); returns the refs not taken (done, not due, or held by
    another worker).

    Without ``wait`` it returns once every run taken has a thread, so the worker takes its
    next message while they finish: a run is claimed (leased) before it waits for a thread,
    so it is never lost, and a worker's warm shutdown waits for them (``stop_threads``).
    Inside a transaction (a task run eagerly in a test) runs execute one after the other
    here: other threads could not see what the transaction wrote.
    """
    refs = list(refs)
    claimed = claim_runs(refs)
    taken = {run.pk for run in claimed}
    size = settings.PORTAL_WORKER_RUN_THREADS
    credentials: dict = {}
    if (wait and len(claimed) <= 1) or size <= 1 or connection.in_atomic_block:
        for run in claimed:
            execute_claimed(run, credentials=credentials)
    else:
        threads = _threads(size)
        futures = [threads.submit(run, credentials) for run in claimed]
        if wait:
            for future in futures:
                future.result()
    return [ref for ref in refs if ref[1] not in taken]


class _Threads:
    """This process's run threads, and a count of the free ones: a batch waits for a free
    thread rather than queueing runs behind busy ones."""

    def __init__(self, size: int):
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="run")
        self.free = threading.Semaphore(size)

    def submit(self, run: Run, credentials: dict) -> Future:
        self.free.acquire()
        future = self.pool.submit(_execute_in_thread, run, credentials=credentials)
        future.add_done_callback(lambda _: self.free.release())
        return future


_pools: dict[int, _Threads] = {}
_pools_lock = threading.Lock()


def _threads(size: int) -> _Threads:
    # Made on first use in each worker process (a prefork child's own, never the parent's).
    with _pools_lock:
        if size not in _pools:
            _pools[size] = _Threads(size)
        return _pools[size]


def stop_threads() -> None:
    """Wait for the runs this process is executing on threads, then end the threads (their
    database connections close with them)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for threads in pools:
        threads.pool.shutdown(wait=True)
    gc.collect()  # a finished thread's connection is closed when it is collected


def _execute_in_thread(run: Run, *, credentials: dict) -> str | None:
    # Each thread keeps its own database connection, dropped as a request would drop it.
    close_old_connections()
    try:
        return execute_claimed(run, credentials=credentials)
    except Exception:
        # Nobody waits for this thread's answer: say it here. The run keeps its lease and
        # is taken over when the lease expires, as after a task that failed.
        logger.exception("run %s stopped on an internal error", run.pk)
        raise
    finally:
        close_old_connections()


def execute_claimed(run: Run, *, credentials: dict | None = None) -> str | None:
    """Execute a run this worker claimed; returns its new status, or None if it was lost.
    ``credentials`` holds the credentials read for other runs of the same batch."""
    # Bound here, in the thread that runs it: log lines say which run, event and delivery.
    request_id = (run.event.headers or {}).get("x-request-id") if run.event_id else None
    with logcontext.bound(run_id=run.pk, event_id=run.event_id, request_id=request_id):
        status = _execute_claimed(run, credentials)
        logger.info("run %s: %s", run.pk, status or "lost to another worker")
        return status


def _execute_claimed(run: Run, credentials: dict | None) -> str | None:
    if give_up_if_exhausted(run):
        return RunStatus.FAILED
    # A first attempt has no records yet: only a run claimed before has some to resume.
    rows = {row.position: row for row in StepRun.objects.filter(run=run)} if run.attempt > 1 else {}
    host = CloudHost(run, rows, credentials)
    result = flows.execute_steps(
        run.version.definition,
        # The unredacted trigger document exists only here, in the worker's memory.
        trigger_document(run.event) if run.event_id else run.input,
        host=host,
        previous={position: _record(row) for position, row in rows.items()},
        idempotency_prefix=str(run.uid),
        purpose=f"processflow {run.processflow.name!r}, run {run.pk}",
    )
    if result.status == LOST:
        return None
    if result.status == RunStatus.SUCCEEDED:
        return conclude(run, succeeded=True, output=result.output, host=host)
    failure = result.failure
    return conclude(
        run,
        succeeded=False,
        error=result.error,
        retryable=failure.retryable,
        retry_after=failure.retry_after,
        host=host,
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
    host: CloudHost | None = None,
) -> str | None:
    """Apply a claimed run's outcome, wherever it ran (a Cloud worker or an agent): success,
    a retry with backoff, or failure for good with its alert. The step records ``host``
    still holds are written in the same transaction as the outcome. Returns the new status,
    or None if the lease was no longer ``run``'s (nothing written)."""
    if succeeded:
        fields = dict(
            status=RunStatus.SUCCEEDED,
            output=output if output is not None else {},
            error="",
            finished_at=timezone.now(),
            next_attempt_at=None,
        )
    else:
        delay = retry_policy().next_delay(
            retryable=retryable, attempt=run.attempt, retry_after=retry_after
        )
        if delay is not None:
            fields = dict(
                status=RunStatus.RETRYING,
                error=error,
                next_attempt_at=timezone.now() + timedelta(seconds=delay),
            )
        else:
            fields = dict(status=RunStatus.FAILED, error=error, finished_at=timezone.now())
    with transaction.atomic():
        if host is not None:
            host.save_steps()
        if not _finish(run, **fields):
            # Taken over meanwhile: the step records of a lease lost are not kept either.
            transaction.set_rollback(True)
            return None
    if fields["status"] == RunStatus.RETRYING:
        dispatch.publish_run(run.organization_id, run.pk, countdown=delay)
    elif fields["status"] == RunStatus.FAILED:
        alerting.run_failed(run, error)
    return fields["status"]
