"""The work loop: long-poll the portal for jobs, run them, report, heartbeat.

Threads: one long-polls ``jobs`` (only while a run slot is free), one heartbeats, one renews
the leases of runs in progress, senders deliver reports (``agent.outbox``) and one flushes
what they could not, and a pool of ``concurrency`` threads runs the jobs.
Runs go through the flow engine (``flows.execute_steps``) with an :class:`AgentHost`: the
credential a step names is opened from the local store, the lease is renewed through the
portal, and step records go through the outbox. When the portal cannot be reached every
thread backs off with jitter; nothing it had to report is lost.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.utils import timezone

import connectors
import flows
from agent import VERSION
from agent.client import (
    Backoff,
    LeaseLost,
    PortalClient,
    PortalError,
    PortalUnavailable,
    Rejected,
    Unauthorized,
)
from agent.local import store
from agent.local.models import Registration
from agent.outbox import Outbox
from flows import calls, definition
from flows.runner import LOST

logger = logging.getLogger(__name__)

POLL_WAIT = 25
MAX_JOBS = 10
HEARTBEAT_SECONDS = 15
FLUSH_SECONDS = 2
NOT_ON_AGENT = (
    "Subscribing a Processflow URL from a step is done by the Cloud agent; on an "
    "On-Premise agent the portal subscribes deployed flows through the agent itself."
)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def step_record(data: dict) -> flows.StepRecord:
    """A step record of an earlier attempt, from the job's ``previous`` list."""
    fields = {f: data[f] for f in flows.StepRecord.__dataclass_fields__ if f in data}
    for name in ("started_at", "finished_at"):
        fields[name] = _parse_time(fields.get(name))
    return flows.StepRecord(**fields)


class AgentHost:
    """The engine's host on the agent, for one leased run."""

    def __init__(self, worker: Worker, run: dict):
        self.worker = worker
        self.run_id = int(run["id"])
        self.lease = str(run["lease"])
        self.lease_seconds = float(run.get("lease_seconds") or 300)
        self.renewed = time.monotonic()
        self.lost = False

    @contextmanager
    def open_credential(self, ref, *, application, purpose):
        connection = store.find_connection(application, ref)
        if connection is None:
            raise flows.CredentialUnavailable(
                f"This agent has no {application or ''} connection named {ref!r}: enable the "
                "application in the agent's Settings panel and add the connection in its App "
                "Configurations panel (the name must match the step's)."
            )
        opened = store.open_connection(connection)
        yield flows.OpenedCredential(
            application=connection.application,
            credentials=opened.credentials,
            secret_values=opened.secret_values,
        )

    def runtime(self, app: connectors.Connector) -> connectors.Runtime:
        return store.runtime(app)

    def callback_target(self, app: connectors.Connector, url: str):
        portal = self.worker.client.base.removesuffix("api/v1/agent/")
        if url and url.startswith(portal):
            raise flows.CallbackUnavailable(NOT_ON_AGENT)
        return None

    def now(self):
        return timezone.now()

    def hold(self) -> bool:
        if self.lost or self.lease in self.worker.outbox.lost_leases:
            self.lost = True
            return False
        if time.monotonic() - self.renewed < self.lease_seconds / 2:
            return True
        return self.renew()

    def renew(self) -> bool:
        """Renew the run's lease through the portal; False once it is lost."""
        elapsed = time.monotonic() - self.renewed
        try:
            self.worker.client.renew(self.run_id, self.lease)
        except LeaseLost:
            self.lost = True
            return False
        except PortalError as error:
            # Not renewed, but the lease may still run: go on while it surely does.
            logger.warning("run %s: lease not renewed (%s)", self.run_id, error)
            return elapsed < self.lease_seconds * 0.9
        self.renewed = time.monotonic()
        return True

    def record_step(self, record: flows.StepRecord) -> None:
        # Kept on disk at once, sent with the run's finish (one report per run); a run still
        # going has them sent by the background flusher within a few seconds.
        self.worker.outbox.add_step(self.run_id, self.lease, record.__dict__.copy())


class Worker:
    """The work loop of one registered agent."""

    def __init__(
        self,
        registration: Registration,
        *,
        concurrency: int = 8,
        poll_wait: float = POLL_WAIT,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ):
        self.client = PortalClient(registration.portal_url, store.agent_secret(registration))
        self.outbox = Outbox(self.client)
        self.concurrency = max(1, concurrency)
        self.poll_wait = poll_wait
        self.heartbeat_seconds = heartbeat_seconds
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="agent-run")
        self._threads: list[threading.Thread] = []
        self._wake_flusher = threading.Event()
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._hosts: dict[int, AgentHost] = {}

    # --- Life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        for name, target in (
            ("agent-poll", self._poll_loop),
            ("agent-heartbeat", self._heartbeat_loop),
            ("agent-flush", self._flush_loop),
            ("agent-leases", self._lease_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, *, grace: float = 30) -> None:
        """Stop asking for work, let running jobs end, send what is left (what cannot be
        sent stays in the outbox for the next start)."""
        self.stopping.set()
        self._wake_flusher.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
        self.outbox.close()
        for thread in self._threads:
            thread.join(timeout=grace)
        with store.closing_connections():
            self.outbox.flush()

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopping; True when it is time to stop."""
        return self.stopping.wait(seconds)

    # --- Threads -------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        backoff = Backoff()
        with store.closing_connections():
            while not self.stopping.is_set():
                if self.outbox.revoked.is_set():
                    self._revoked()
                    return
                free = self._take_slots()
                if not free:
                    continue
                try:
                    jobs = self.client.jobs(wait=self.poll_wait, limit=free)
                except Unauthorized:
                    self._give_back(free)
                    self.outbox.revoked.set()
                    continue
                except PortalError as error:
                    self._give_back(free)
                    self._note_error(str(error))
                    if self._sleep(backoff.next()):
                        return
                    continue
                backoff.reset()
                self._note_contact()
                self._give_back(free - min(free, len(jobs)))
                for position, job in enumerate(jobs):
                    if position >= free:
                        self._slots.acquire()  # more than asked for: wait for a slot
                    self._pool.submit(self._job, job)

    def _take_slots(self) -> int:
        """Wait for a free run slot, then take every free one (how many jobs to ask for)."""
        while not self._slots.acquire(timeout=1):
            if self.stopping.is_set():
                return 0
        taken = 1
        while taken < min(self.concurrency, MAX_JOBS) and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _give_back(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _heartbeat_loop(self) -> None:
        backoff = Backoff()
        with store.closing_connections():
            while not self.stopping.is_set():
                try:
                    self.heartbeat()
                except Unauthorized:
                    self.outbox.revoked.set()
                    return
                except PortalError as error:
                    self._note_error(str(error))
                    if self._sleep(min(backoff.next(), self.heartbeat_seconds)):
                        return
                    continue
                backoff.reset()
                if self._sleep(self.heartbeat_seconds):
                    return

    def heartbeat(self) -> dict:
        """Tell the portal this agent is alive and what it has configured; store the
        applications the portal answers (the Settings panel lists them)."""
        answer = self.client.heartbeat(
            version=VERSION, applications=store.configured_applications()
        )
        store.offer_applications(answer.get("applications") or [])
        self._note_contact()
        return answer

    def _lease_loop(self) -> None:
        """Renew the leases of runs in progress, so that a step slower than a lease (an
        application taking its time) is not taken over by another agent meanwhile."""
        while not self.stopping.wait(1.0):
            with self._running_lock:
                hosts = list(self._hosts.values())
            for host in hosts:
                if not host.lost and time.monotonic() - host.renewed >= host.lease_seconds / 3:
                    host.renew()

    def _flush_loop(self) -> None:
        backoff = Backoff()
        with store.closing_connections():
            while not self.stopping.is_set():
                self._wake_flusher.clear()
                try:
                    # Reports younger than this are sent by a sender when their run ends.
                    ok = self.outbox.flush(older_than=FLUSH_SECONDS)
                except Exception:  # the database busy or a bug: log, keep the loop alive
                    logger.exception("flushing the outbox failed")
                    ok = False
                wait = FLUSH_SECONDS if ok else backoff.next()
                if ok:
                    backoff.reset()
                self._wake_flusher.wait(wait)

    # --- Jobs ----------------------------------------------------------------------------------

    def _job(self, job: dict) -> None:
        job_id = str(job.get("id") or "")
        try:
            with store.closing_connections():
                with self._running_lock:
                    if job_id in self._running:  # offered again while still running here
                        return
                    self._running.add(job_id)
                try:
                    kind = job.get("kind")
                    if kind == "run":
                        self.run(job["run"])
                    elif kind == "subscribe":
                        self._report(job_id, self.subscribe(job))
                    elif kind == "unsubscribe":
                        self._report(job_id, self.unsubscribe(job))
                    elif kind == "poll":
                        self._report(job_id, self.poll(job))
                    else:
                        logger.warning("job %s of unknown kind %r ignored", job_id, kind)
                finally:
                    with self._running_lock:
                        self._running.discard(job_id)
        except Exception:
            logger.exception("job %s stopped on an internal error", job_id)
        finally:
            self._slots.release()

    def run(self, run: dict) -> str:
        """Execute a leased run through the engine and report its outcome."""
        host = AgentHost(self, run)
        with self._running_lock:
            self._hosts[host.run_id] = host
        try:
            return self._execute(host, run)
        finally:
            with self._running_lock:
                self._hosts.pop(host.run_id, None)

    def _execute(self, host: AgentHost, run: dict) -> str:
        previous = {}
        for data in run.get("previous") or []:
            record = step_record(data)
            previous[record.position] = record
        try:
            result = flows.execute_steps(
                run["definition"],
                run.get("trigger"),
                host=host,
                previous=previous,
                idempotency_prefix=str(run.get("idempotency_prefix") or run.get("uid")),
                purpose=str(run.get("purpose") or f"run {host.run_id}"),
            )
        except Exception as error:  # a definition this engine cannot read: a clear failure
            logger.exception("run %s could not be executed", host.run_id)
            result = flows.RunResult(
                status="failed",
                error=f"The agent could not execute the run ({type(error).__name__}).",
                failure=flows.StepFailed("internal error", retryable=True),
            )
        if result.status == LOST or host.lost:
            self.outbox.drop_run(host.run_id, host.lease)
            return LOST
        failure = result.failure
        self.outbox.add_finish(
            host.run_id,
            host.lease,
            {
                "status": result.status,
                "output": result.output,
                "error": result.error,
                "retryable": bool(failure and failure.retryable),
                "retry_after": failure.retry_after if failure else None,
            },
        )
        self.outbox.kick(host.run_id)
        return result.status

    def _report(self, job_id: str, result: dict) -> None:
        self.outbox.add_result(job_id, result)
        self.outbox.kick(None)

    def _credentials(self, job: dict):
        application = str(job.get("application") or "")
        connection = store.find_connection(application, job.get("credential"))
        if connection is None:
            raise flows.CredentialUnavailable(
                f"This agent has no {application} connection named {job.get('credential')!r}."
            )
        return definition.application(application), store.open_connection(connection)

    def subscribe(self, job: dict) -> dict:
        """Create the deployment's webhook subscription with the local credential."""
        try:
            app, opened = self._credentials(job)
        except (flows.CredentialUnavailable, LookupError) as error:
            return {"ok": False, "error": str(error)}
        runtime = store.runtime(app)
        options = {str(k): str(v) for k, v in (job.get("options") or {}).items()}

        def attempt():
            return calls.subscribe(
                app, opened.credentials, runtime=runtime, url=job["url"],
                events=job.get("events") or [], options=options,
                signing_key=job.get("signing_key") or None,
            )  # fmt: skip

        outcome = attempt()
        if not outcome.ok and outcome.already_exists:
            # A subscription of this URL is left from before (another key, perhaps):
            # replaced, as the Cloud agent's automatic registration does.
            removed = calls.remove_subscriptions_to(
                app, opened.credentials, runtime=runtime, url=job["url"], options=options
            )
            if removed.ok:
                outcome = attempt()
        if not outcome.ok:
            return {"ok": False, "error": _clean(outcome.message, opened)}
        result = {"ok": True, "subscription": outcome.subscription.get("uri", "")}
        if outcome.signing_key:  # an application that makes its own key: intake needs it
            result["signing_key"] = outcome.signing_key
        return result

    def unsubscribe(self, job: dict) -> dict:
        try:
            app, opened = self._credentials(job)
        except (flows.CredentialUnavailable, LookupError) as error:
            return {"ok": False, "error": str(error)}
        outcome = calls.unsubscribe(
            app, opened.credentials, str(job.get("subscription") or ""),
            runtime=store.runtime(app),
        )  # fmt: skip
        if not outcome.ok:
            return {"ok": False, "error": _clean(outcome.message, opened)}
        return {"ok": True}

    def poll(self, job: dict) -> dict:
        """Fetch the source's records for a polling deployment (the portal keeps the new
        ones as events, as for the Cloud agent)."""
        source = job.get("source") or {}
        if not source:
            return {"ok": True, "records": [{"tick": timezone.now().isoformat()}],
                    "cursor": job.get("cursor") or {}}  # fmt: skip
        job = {**job, "application": job.get("application") or source.get("application"),
               "credential": job.get("credential") or source.get("credential")}  # fmt: skip
        try:
            app, opened = self._credentials(job)
        except (flows.CredentialUnavailable, LookupError) as error:
            return {"ok": False, "error": str(error)}
        outcome = calls.run_action(
            app, source["action"], opened.credentials, runtime=store.runtime(app),
            filters=source.get("filters", []), context={}, limit=1000,
        )  # fmt: skip
        if not outcome.ok:
            return {"ok": False, "error": _clean(outcome.message, opened)}
        items = outcome.items if outcome.items is not None else [outcome.data]
        return {"ok": True, "records": items, "cursor": job.get("cursor") or {}}

    # --- State for `status` and the UI ---------------------------------------------------------

    def _note_contact(self) -> None:
        if getattr(self, "_last_error", None):
            logger.info("the portal answers again")
        self._last_error = None
        Registration.objects.filter(pk=1).update(last_contact_at=timezone.now(), last_error="")

    def _note_error(self, error: str) -> None:
        # An outage is logged when it starts (or changes), not on every retry.
        if error != getattr(self, "_last_error", None):
            logger.warning("%s (retrying with backoff)", error)
        self._last_error = error
        Registration.objects.filter(pk=1).update(last_error=error[:500])

    def _revoked(self) -> None:
        logger.error(
            "The portal no longer accepts this agent's secret (it was revoked). Register "
            "again with a new key: connect-agent register --portal URL --key KEY"
        )
        Registration.objects.filter(pk=1).update(last_error="Revoked by the portal.")


def _clean(message: str, opened: store.Opened) -> str:
    from flows.redaction import redact

    return redact(message, secrets=opened.secret_values)


def register(*, portal_url: str, key: str, name: str | None) -> Registration:
    """Pair this agent with the organization that made ``key``; raises PortalError."""
    client = PortalClient(portal_url)
    hostname = socket.gethostname()
    answer = client.register(key=key, name=name or hostname, hostname=hostname, version=VERSION)
    secret = answer.get("secret")
    if not isinstance(secret, str) or not secret:
        raise Rejected(200, "the portal's answer holds no agent secret")
    return store.save_registration(portal_url=portal_url, answer=answer, secret=secret)


__all__ = ["AgentHost", "PortalUnavailable", "Worker", "register"]
