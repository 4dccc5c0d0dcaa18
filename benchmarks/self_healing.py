"""Self-healing under faults: accepted events to succeeded runs while a process is killed.

On a throwaway PostgreSQL database and a private redis-server (append-only, as Compose runs
it; never the shared Redis), with the relay, one worker and beat as ``runall`` starts them:

1. deploys a flow with a map step and a REST forward to a loopback destination that honours
   ``Idempotency-Key`` and counts every request by key;
2. stores ``--events`` accepted events with their outbox entries at once (a burst; intake's
   own speed is ``webhook_intake.py``'s subject);
3. once a third of the runs succeeded, applies ``--fault``: ``worker-kill`` (SIGKILL the
   worker, start a new one), ``worker-kill2`` (the same twice), ``redis-kill`` (SIGKILL
   redis-server, start it again 5 s later; the worker is not restarted), ``relay-kill``
   (SIGKILL the relay, start a new one), ``postgres-stop`` (``pg_ctl stop -m immediate`` on
   the benchmark's private PostgreSQL cluster, started again 5 s later; nothing else is
   restarted), or ``none``;
4. waits until every run succeeded and reports: lost events (no succeeded run), runs per
   event, calls the destination received twice with one key (what a destination that
   ignores the key would have seen twice), broker messages per event on the intake and
   actions queues (LPUSH/RPUSH counted by Redis keyspace notifications), worker restarts
   done by hand (only the fault's own), and seconds from the last event stored to the last
   run succeeded.

    .venv/bin/python benchmarks/self_healing.py --fault worker-kill [--events 2000] [--json]
    .venv/bin/python benchmarks/self_healing.py --fault postgres-stop --private-postgres

Needs PostgreSQL (``DATABASE_URL``, default 127.0.0.1) and ``redis-server`` on the PATH.
``--private-postgres`` (implied by ``postgres-stop``: the shared server is never stopped)
runs on a PostgreSQL cluster of the benchmark's own instead (benchmarks/private_services.py).
The sweeper runs every 2 s with a 10 s bound, so that recoveries show within a run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._django import throwaway_django  # noqa: E402

FAULTS = ("none", "worker-kill", "worker-kill2", "redis-kill", "relay-kill", "postgres-stop")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- The destination ---------------------------------------------------------------------------


class Destination:
    """A JSON API on loopback: 201 to every POST, requests counted by Idempotency-Key."""

    def __init__(self):
        self.keys: Counter[str] = Counter()
        self.lock = threading.Lock()
        destination = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with destination.lock:
                    destination.keys[self.headers.get("Idempotency-Key") or ""] += 1
                self._answer(201, b'{"ok": true}')

            def do_GET(self):
                self._answer(200, b'{"status": "ok"}')

            def _answer(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- Processes ---------------------------------------------------------------------------------


class Children:
    """Child processes in their own process groups, logs in a temporary folder."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], ready: str | None = None) -> subprocess.Popen:
        log = (self.log_dir / f"{name}-{time.monotonic_ns()}.log").open("wb")
        process = subprocess.Popen(
            args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        process.log_path = Path(log.name)
        self.running[name] = process
        if ready:
            deadline = time.monotonic() + 300
            while ready not in process.log_path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start:\n{process.log_path.read_text()}")
                time.sleep(0.1)
        return process

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def redis_args(port: int, directory: str) -> list[str]:
    return [
        shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1",
        "--port", str(port), "--dir", directory, "--save", "",
        "--appendonly", "yes", "--appendfsync", "everysec",
    ]  # fmt: skip


def start_redis(children: Children, port: int, directory: str) -> None:
    import redis

    children.start("redis", redis_args(port, directory))
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


class PushCounter:
    """Messages pushed onto each Redis list, from keyspace notifications."""

    def __init__(self, port: int):
        import redis

        self.port = port
        self.counts: Counter[str] = Counter()
        self.redis = redis
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        prefix = "__keyspace@0__:"
        while not self.stop.is_set():  # again after Redis was killed and came back
            try:
                client = self.redis.Redis(port=self.port, socket_connect_timeout=1)
                client.config_set("notify-keyspace-events", "Kl")
                pubsub = client.pubsub()
                pubsub.psubscribe(prefix + "*")
                while not self.stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message and message["data"] in (b"lpush", b"rpush"):
                        self.counts[message["channel"].decode()[len(prefix) :]] += 1
            except self.redis.RedisError:
                time.sleep(0.2)


# --- The run -----------------------------------------------------------------------------------


def prepare(destination_url: str, events: int):
    """The organization, a deployed map + forward flow, and ``events`` accepted events."""
    from django.contrib.auth import get_user_model

    from portal.processflows.models import (
        Deployment,
        Outbox,
        RegistrationState,
        TriggerEvent,
    )
    from portal.processflows.services import create_processflow
    from portal.tenancy.models import Membership, Organization, Role
    from portal.vault.services import create_credential

    organization = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user(email="bench@example.com", password=None)
    owner = Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    calendly = create_credential(
        organization, actor=owner, application="calendly", name="source",
        secrets={"personal_access_token": "bench-token-0123456789"},
    )  # fmt: skip
    rest = create_credential(
        organization, actor=owner, application="rest", name="destination",
        fields={"base_url": destination_url, "auth_type": "bearer"},
        secrets={"token": "dest-token-0123456789abcdef"},
    )  # fmt: skip
    flow = create_processflow(
        organization,
        actor=owner,
        name="Self-healing benchmark",
        definition={
            "trigger": {
                "type": "webhook", "application": "calendly", "credential": calendly.pk,
                "events": ["invitee.created"], "scope": "organization",
            },
            "steps": [
                {"name": "document", "type": "map",
                 "mapping": {"email": "{{ trigger.payload.email }}"}},
                {"name": "forward", "type": "action", "application": "rest",
                 "credential": rest.pk, "action": "post_json",
                 "filters": [["path", "/bookings"]], "document": "{{ steps.document }}"},
            ],
        },
    )  # fmt: skip
    deployment = Deployment.objects.create(
        organization=organization, processflow=flow, version=flow.versions.first(),
        registration_state=RegistrationState.ACTIVE,
    )  # fmt: skip

    def event(i: int) -> TriggerEvent:
        body = {"event": "invitee.created", "payload": {"email": f"guest{i}@example.com"}}
        return TriggerEvent(
            organization=organization, deployment=deployment,
            source=TriggerEvent.Source.WEBHOOK, event_name="invitee.created",
            dedupe_key=f"bench:{i}", body=json.dumps(body).encode(),
        )  # fmt: skip

    for start in range(0, events, 1000):
        batch = TriggerEvent.objects.bulk_create(
            event(i) for i in range(start, min(events, start + 1000))
        )
        Outbox.objects.bulk_create(Outbox(event=event) for event in batch)
    return flow


def run(fault: str, events: int, services=None) -> dict:
    from django.db import DatabaseError, close_old_connections, connection

    from portal.processflows.models import Run, RunStatus

    destination = Destination()
    work = tempfile.mkdtemp(prefix="portal-selfheal-")
    redis_port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PORTAL_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
        "PORTAL_OUTBOX_REDELIVERY_SECONDS": "10",
        "PORTAL_SWEEP_SECONDS": "2",
        "PORTAL_RUN_LEASE_SECONDS": "10",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    }
    children = Children(env, Path(work))
    python = sys.executable
    worker = [
        python, "-m", "celery", "-A", "portal", "worker", "-Q", "intake,actions,maintenance",
        "--concurrency", "2", "-l", "info",
    ]  # fmt: skip
    relay = [python, "manage.py", "relay_outbox"]
    beat = [python, "-m", "celery", "-A", "portal", "beat", "-l", "info",
            "-s", str(Path(work) / "beat-schedule")]  # fmt: skip
    figures: dict = {"fault": fault, "events": events}
    try:
        start_redis(children, redis_port, work)
        pushes = PushCounter(redis_port)
        time.sleep(0.5)  # subscribed before the first message
        flow = prepare(destination.url, events)
        runs = Run.objects.unscoped("benchmark").filter(processflow=flow)

        last_count = 0

        def succeeded() -> int:
            nonlocal last_count
            try:
                last_count = runs.filter(status=RunStatus.SUCCEEDED).count()
            except DatabaseError:  # PostgreSQL stopped or restarting: the last count holds
                connection.close()
                close_old_connections()
            return last_count

        stored = time.monotonic()
        children.start("beat", beat, ready="beat: Starting")
        children.start("relay", relay, ready="relay running")
        children.start("worker", worker, ready=" ready.")

        while succeeded() < events // 3:
            time.sleep(0.2)
        if fault in ("worker-kill", "worker-kill2"):
            children.kill("worker")
            children.start("worker", worker, ready=" ready.")
            if fault == "worker-kill2":
                while succeeded() < 2 * events // 3:
                    time.sleep(0.2)
                children.kill("worker")
                children.start("worker", worker, ready=" ready.")
        elif fault == "redis-kill":
            children.kill("redis")
            time.sleep(5)
            start_redis(children, redis_port, work)
        elif fault == "relay-kill":
            children.kill("relay")
            children.start("relay", relay, ready="relay running")
        elif fault == "postgres-stop":
            services.stop_postgres("immediate")
            time.sleep(5)
            services.start_postgres()
        back, at_back = time.monotonic(), succeeded()
        resumed = None

        deadline = time.monotonic() + 1800
        while (count := succeeded()) < events and time.monotonic() < deadline:
            if resumed is None and count > at_back:
                resumed = time.monotonic() - back
            time.sleep(0.2)
        if resumed is None and succeeded() > at_back:
            resumed = time.monotonic() - back
        drained = time.monotonic() - stored
        pushes.stop.set()
        per_event = Counter(runs.filter(replay_of=None).values_list("event_id", flat=True))
        worker_log = "".join(p.read_text(errors="replace") for p in Path(work).glob("worker-*.log"))
        figures.update(
            succeeded=succeeded(),
            lost=events - succeeded(),
            runs_per_event_above_1=sum(1 for n in per_event.values() if n > 1),
            destination_calls=sum(destination.keys.values()),
            keys_called_twice_or_more=sum(1 for n in destination.keys.values() if n > 1),
            intake_messages_per_event=round(pushes.counts["intake"] / events, 3),
            actions_messages_per_event=round(pushes.counts["actions"] / events, 3),
            sweeps_queued=pushes.counts["maintenance"],
            worker_exits_on_its_own=worker_log.count("Unrecoverable error"),
            seconds_to_drain=round(drained, 1),
            # From the fault's end (the process or service back) to the next run succeeded.
            seconds_to_resume_after_fault=None if resumed is None else round(resumed, 1),
        )
        return figures
    finally:
        children.stop_all()
        destination.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=FAULTS, default="none")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument(
        "--private-postgres", action="store_true",
        help="a PostgreSQL cluster of the benchmark's own (implied by --fault postgres-stop)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    with contextlib.ExitStack() as stack:
        services = None
        if options.private_postgres or options.fault == "postgres-stop":
            from benchmarks.private_services import private_services

            services = stack.enter_context(private_services(redis=False))
            os.environ["DATABASE_URL"] = services.database_url("portal")
        os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal")
        database = stack.enter_context(throwaway_django())
        figures = run(options.fault, options.events, services)
    figures["database"] = database + (" (private cluster)" if services else "")
    if options.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:>28}: {value}")


if __name__ == "__main__":
    main()
