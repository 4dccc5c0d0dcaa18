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
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
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
from portal.processflows.writer import Writer
from portal.processflows.writer import stop as stop_writer
from portal.processflows.writer import writer as process_writer
from portal.tenancy.models import Organization
from portal.vault import audit
from portal.vault.models import CredentialEvent
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


def claim_runs(
    refs: Iterable[tuple[int, int]], *, known: Mapping[int, Run] | None = None
) -> list[Run]:
    """Take each ``(organization_id, run_id)`` that is due and free (or abandoned by a dead
    worker) for this Cloud worker, in one transaction; returns the runs taken, each with its
    version, flow and event. Runs of a deployment on an agent group are never taken here:
    only an agent of the group claims them (:func:`claim_for_group`).

    Rows another worker is claiming at this moment are skipped (``SKIP LOCKED``), not waited
    for: that worker takes them. One fresh lease token stands for the whole claim.

    ``known``: runs by id that the caller already holds with their version, flow and event
    (the ones it just created): those are brought up to date in place (status, lease,
    attempt) instead of read again with what they refer to.
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
        runs = Run.objects.for_tenant(organization_id)
        held = [known[pk] for pk in ids if known and pk in known and _complete(known[pk])]
        if held:
            # A profile of the worker found the full read (the flow's definition and the
            # event's body decoded again for each run) a sixth of its CPU.
            claimed_now = {
                pk: (attempt, started_at, expires)
                for pk, attempt, started_at, expires in runs.filter(
                    pk__in=[run.pk for run in held]
                ).values_list("pk", "attempt", "started_at", "lease_expires_at")
            }
            organization = Organization.objects.get(pk=organization_id)
            for run in held:
                run.attempt, run.started_at, run.lease_expires_at = claimed_now[run.pk]
                run.status, run.lease_owner = RunStatus.RUNNING, token
                run.processflow.organization = organization
                claimed.append(run)
        rest = sorted(set(ids) - {run.pk for run in held})
        if rest:
            claimed.extend(
                runs.select_related("version", "processflow__organization", "event")
                .filter(pk__in=rest)
                .order_by("pk")
            )
    return claimed


def _complete(run: Run) -> bool:
    """Whether ``run`` holds its version, flow and event (what executing it reads)."""
    cached = run._state.fields_cache
    return all(name in cached for name in ("version", "processflow")) and (
        run.event_id is None or "event" in cached
    )


def _finish(run: Run, **fields) -> bool:
    """Record the run's outcome and let go of it; False if it was no longer ours."""
    finished = _release(run, fields)
    if finished:
        _count(run, fields)
    return finished


def _release(run: Run, fields: dict) -> bool:
    fields.update(lease_owner="", lease_expires_at=None)
    return bool(
        Run.objects.for_tenant(run.organization_id)
        .filter(pk=run.pk, lease_owner=run.lease_owner)
        .update(**fields)
    )


def _count(run: Run, fields: dict) -> None:
    # metrics (observability): count the outcome once, by whoever recorded it
    metrics.run_ended(
        fields["status"], started_at=run.started_at, finished_at=fields.get("finished_at")
    )


class CloudHost:
    """The engine's host in a Celery worker, for one claimed run.

    Until the lease expires nobody else can take the run (claims and the sweeper both wait
    for the expiry), so :meth:`hold` renews it only once half of it has passed: renewing
    earlier would only cost a write per step.
    """

    def __init__(
        self,
        run: Run,
        rows: dict[int, StepRun],
        credentials: dict | None = None,
        *,
        writer: Writer | None = None,
    ):
        self.run = run
        self.rows = rows
        self.unsaved: dict[int, StepRun] = {}
        self.renewed = time.monotonic()
        # Credentials read for the runs of one batch, shared by them: the read cost a fifth
        # of a run's CPU. Each use is still opened (decrypted) and audited on its own.
        self.credentials = {} if credentials is None else credentials
        # On a run thread: the process's writer commits this run's writes (its thread
        # holds no database connection). None: written here, on this thread's connection.
        self.writer = writer

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
        record = None
        if self.writer is not None:
            writer = self.writer

            def record(*args, **kwargs):
                writer.later(_Writes(entries=[audit.entry(*args, **kwargs)]))

        with open_credential(credential, purpose=purpose, record=record) as opened:
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
        rows = self.take_unsaved()
        if not rows:
            return
        if self.writer is None:
            _write_steps(rows)
        else:
            self.writer.write(_Writes(steps=rows))

    def take_unsaved(self) -> list[StepRun]:
        """The step records not written yet, from now on the caller's to write."""
        rows, self.unsaved = list(self.unsaved.values()), {}
        return rows


def _write_steps(rows: list[StepRun]) -> None:
    """Write step records: the new ones in one INSERT, the others in one UPDATE."""
    new = [row for row in rows if row.pk is None]
    if new:
        StepRun.objects.bulk_create(new)
    known = [row for row in rows if not any(row is made for made in new)]
    if not known:
        return
    if connection.vendor != "postgresql":
        for row in known:
            row.save(update_fields=_RECORD_FIELDS)
        return
    # One statement for every row: the ORM's save cost a query, and much CPU, per row.
    params: list = []
    for row in known:
        params += [
            row.pk, row.status, row.attempts, json.dumps(row.request), row.response_status,
            json.dumps(row.output), row.error, row.duration_ms, row.started_at, row.finished_at,
        ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_UPDATE_STEPS.format(values=", ".join([_STEP_VALUES] * len(known))), params)


# Only placeholders and the models' own table and column names go into these statements.
_STEP_VALUES = (
    "(%s::bigint, %s::varchar, %s::integer, %s::jsonb, %s::integer, %s::jsonb, %s::text,"
    " %s::integer, %s::timestamptz, %s::timestamptz)"
)
_UPDATE_STEPS = (
    f"UPDATE {StepRun._meta.db_table} AS s"  # noqa: S608
    f" SET {', '.join(f'{name} = v.{name}' for name in _RECORD_FIELDS)}"
    " FROM (VALUES {values})"
    f" AS v(id, {', '.join(_RECORD_FIELDS)}) WHERE s.id = v.id"
)
_RUN_VALUES = "(%s::bigint, %s::bigint, %s::varchar, %s::jsonb, %s::timestamptz)"
_RELEASE_SUCCEEDED = (
    f"UPDATE {Run._meta.db_table} AS r"  # noqa: S608
    " SET status = %s, output = v.output, error = '', finished_at = v.finished_at,"
    " next_attempt_at = NULL, lease_owner = '', lease_expires_at = NULL"
    " FROM (VALUES {values}) AS v(id, organization_id, owner, output, finished_at)"
    " WHERE r.id = v.id AND r.organization_id = v.organization_id"
    " AND r.lease_owner = v.owner AND r.lease_owner <> '' RETURNING r.id"
)


def _release_succeeded(releases: list[tuple[Run, dict]]) -> set[int]:
    """:func:`_release` for runs that succeeded, in one statement; the ids released."""
    if connection.vendor != "postgresql":
        return {run.pk for run, fields in releases if _release(run, fields)}
    params: list = [RunStatus.SUCCEEDED]
    for run, fields in releases:
        params += [
            run.pk, run.organization_id, run.lease_owner, json.dumps(fields["output"]),
            fields["finished_at"],
        ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            _RELEASE_SUCCEEDED.format(values=", ".join([_RUN_VALUES] * len(releases))), params
        )
        return {row[0] for row in cursor.fetchall()}


@dataclass
class _Writes:
    """What one run thread waits to have committed (see ``writer.py``): step records, an
    outcome (the run and the fields :func:`_release` writes), audit entries."""

    steps: list[StepRun] = field(default_factory=list)
    release: tuple[Run, dict] | None = None
    entries: list[CredentialEvent] = field(default_factory=list)
    new: list = field(default_factory=list)

    def __post_init__(self):
        # What the INSERTs give a primary key, to take back if they are rolled back.
        self.new = [row for row in [*self.steps, *self.entries] if row.pk is None]


def _apply_writes(batch: list[_Writes]) -> list[bool | None]:
    """Write a batch of run threads' writes (in the writer's transaction): all step
    records, all audit entries, the succeeded runs each in one statement; returns, per
    payload, whether its run was released (None: it released none)."""
    _write_steps([row for writes in batch for row in writes.steps])
    entries = [entry for writes in batch for entry in writes.entries]
    if entries:
        CredentialEvent.objects.bulk_create(entries)
    succeeded = [
        writes.release
        for writes in batch
        if writes.release is not None and writes.release[1]["status"] == RunStatus.SUCCEEDED
    ]
    released = _release_succeeded(succeeded) if succeeded else set()
    results: list[bool | None] = []
    for writes in batch:
        if writes.release is None:
            results.append(None)
            continue
        run, fields = writes.release
        if fields["status"] == RunStatus.SUCCEEDED:
            results.append(run.pk in released)
        else:
            results.append(_release(run, fields))
    return results


def _undo_writes(writes: _Writes) -> None:
    for row in writes.new:
        row.pk = None
        row._state.adding = True


def _writer() -> Writer:
    return process_writer(_apply_writes, _undo_writes)


def _record(row: StepRun) -> flows.StepRecord:
    return flows.StepRecord(
        position=row.position, name=row.name, **{n: getattr(row, n) for n in _RECORD_FIELDS}
    )


def execute(organization_id: int, run_id: int) -> str | None:
    """Claim and execute a run; returns its new status, or None if it was not ours to run."""
    claimed = claim_runs([(organization_id, run_id)])
    return execute_claimed(claimed[0]) if claimed else None


def execute_many(
    refs: Iterable[tuple[int, int]],
    *,
    wait: bool = True,
    known: Mapping[int, Run] | None = None,
) -> list[tuple[int, int]]:
    """Claim the runs ``(organization_id, run_id)`` together and execute those taken on
    this process's run threads, ``PORTAL_WORKER_RUN_THREADS`` at a time (their steps
    mostly wait on remote APIs); returns the refs not taken (done, not due, or held by
    another worker).

    Without ``wait`` it returns once every run taken has a thread, so the worker takes its
    next message while they finish: a run is claimed (leased) before it waits for a thread,
    so it is never lost, and a worker's warm shutdown waits for them (``stop_threads``).
    Inside a transaction (a task run eagerly in a test) runs execute one after the other
    here: other threads could not see what the transaction wrote. ``known``: as for
    :func:`claim_runs`.
    """
    refs = list(refs)
    claimed = claim_runs(refs, known=known)
    taken = {run.pk for run in claimed}
    size = settings.PORTAL_WORKER_RUN_THREADS
    credentials: dict = {}
    if (wait and len(claimed) <= 1) or size <= 1 or connection.in_atomic_block:
        for run in claimed:
            execute_claimed(run, credentials=credentials)
    else:
        # What the runs read is read here, once for the batch, so that a run thread needs
        # no database connection: its writes go through the writer (``writer.py``).
        _read_credentials(claimed, credentials)
        earlier = _earlier_records(claimed)
        writer = _writer()
        threads = _threads(size)
        futures = [
            threads.submit(run, credentials, writer, earlier.get(run.pk, {})) for run in claimed
        ]
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

    def submit(self, run: Run, credentials: dict, writer: Writer, rows: dict) -> Future:
        self.free.acquire()
        future = self.pool.submit(
            _execute_in_thread, run, credentials=credentials, writer=writer, rows=rows
        )
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
    stop_writer()  # after the threads: they wait for their writes
    gc.collect()  # a finished thread's connection is closed when it is collected


def _read_credentials(claimed: list[Run], credentials: dict) -> None:
    """Read the credentials the batch's action steps name into ``credentials`` (as
    :meth:`CloudHost.open_credential` keys them); one it cannot read is left to the run."""
    for run in claimed:
        for step in run.version.definition.get("steps", []):
            ref = step.get("credential") if isinstance(step, dict) else None
            if not isinstance(ref, int | str) or not ref:
                continue
            key = (run.organization_id, ref)
            if key in credentials:
                continue
            try:
                credential = credential_for_use(run.processflow.organization, ref)
            except (ValueError, TypeError):  # not an id: the run says why it cannot use it
                continue
            if credential is not None:
                credentials[key] = credential


def _earlier_records(claimed: list[Run]) -> dict[int, dict[int, StepRun]]:
    """The step records of earlier attempts, by run and position (a first attempt has none)."""
    again = [run.pk for run in claimed if run.attempt > 1]
    rows: dict[int, dict[int, StepRun]] = {}
    if again:
        for row in StepRun.objects.filter(run_id__in=again):
            rows.setdefault(row.run_id, {})[row.position] = row
    return rows


def _execute_in_thread(
    run: Run, *, credentials: dict, writer: Writer, rows: dict[int, StepRun]
) -> str | None:
    try:
        return execute_claimed(run, credentials=credentials, writer=writer, rows=rows)
    except Exception:
        # Nobody waits for this thread's answer: say it here. The run keeps its lease and
        # is taken over when the lease expires, as after a task that failed.
        logger.exception("run %s stopped on an internal error", run.pk)
        raise
    finally:
        # A run thread reads nothing in the usual case; one that had to (a lease renewed,
        # a run given up, a credential read again) lets its connection go, so that the
        # threads never hold more than a few of the server's connections.
        if connection.connection is not None:
            connection.close()


def execute_claimed(
    run: Run,
    *,
    credentials: dict | None = None,
    writer: Writer | None = None,
    rows: dict[int, StepRun] | None = None,
) -> str | None:
    """Execute a run this worker claimed; returns its new status, or None if it was lost.
    ``credentials`` holds the credentials read for other runs of the same batch; ``writer``
    commits the run's writes (None: this thread writes them); ``rows``: its step records
    of earlier attempts, when the caller read them."""
    # Bound here, in the thread that runs it: log lines say which run, event and delivery.
    request_id = (run.event.headers or {}).get("x-request-id") if run.event_id else None
    with logcontext.bound(run_id=run.pk, event_id=run.event_id, request_id=request_id):
        status = _execute_claimed(run, credentials, writer, rows)
        logger.info("run %s: %s", run.pk, status or "lost to another worker")
        return status


def _execute_claimed(
    run: Run, credentials: dict | None, writer: Writer | None, rows: dict[int, StepRun] | None
) -> str | None:
    if give_up_if_exhausted(run):
        return RunStatus.FAILED
    if rows is None:
        # A first attempt has no records yet: only a run claimed before has some to resume.
        rows = (
            {row.position: row for row in StepRun.objects.filter(run=run)}
            if run.attempt > 1
            else {}
        )
    host = CloudHost(run, rows, credentials, writer=writer)
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
    if host is not None and host.writer is not None:
        released = host.writer.write(_Writes(steps=host.take_unsaved(), release=(run, fields)))
    else:
        with transaction.atomic():
            if host is not None:
                host.save_steps()
            released = _release(run, fields)
            if not released:
                # Taken over meanwhile: the step records of a lease lost are not kept either.
                transaction.set_rollback(True)
    if not released:
        return None
    _count(run, fields)
    if fields["status"] == RunStatus.RETRYING:
        dispatch.publish_run(run.organization_id, run.pk, countdown=delay)
    elif fields["status"] == RunStatus.FAILED:
        alerting.run_failed(run, error)
    return fields["status"]
