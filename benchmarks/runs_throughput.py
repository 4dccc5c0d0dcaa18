"""Runs per second: signed deliveries -> accepted events -> succeeded runs, all real processes.

What it does, on a throwaway database (created and dropped) and its own Redis database:

1. deploys, per scenario, a triggered processflow of two steps: a map step and a POST of its
   document through the generic ``rest`` connector to a loopback destination
   (``benchmarks/destination.py``, a process of its own answering at once or after a delay);
2. starts what ``make run`` starts, as processes: gunicorn (the portal), the outbox relay,
   one Celery worker (the queues ``runall`` serves, its pool and concurrency) and beat (the
   sweeper);
3. **sustained**: for each destination delay, ``--senders`` keep-alive connections send
   ``--events`` deliveries paced at ``--offered`` per second while the worker runs beside
   intake; reports runs/s succeeded over the sending window (after a warm-up fifth), the
   end-to-end rate (all events / first delivery to last run succeeded) and the drain time
   after the last delivery;
4. **burst**: ``--burst`` deliveries from ``--burst-senders`` connections as fast as intake
   takes them, destination immediate: intake rate and p99 while the worker runs, the
   backlog's drain time after the last delivery was accepted, and broker messages per
   event (every LPUSH onto a queue in the benchmark's Redis database, counted through
   keyspace notifications, so the relay's, the sweeper's and the worker's all count).

Every run must succeed and the destination must receive every event (distinct
Idempotency-Keys are counted, so a forward sent twice shows).

    .venv/bin/python benchmarks/runs_throughput.py                    # the full figures
    .venv/bin/python benchmarks/runs_throughput.py --quick            # about a minute

Needs PostgreSQL and Redis (``--database-url`` / ``--redis-url``). Goals on a 2-core machine
(issue 14): >= 300 runs/s sustained with an immediate destination, >= 150 runs/s with a
200 ms destination, a 10,000-event burst drained <= 40 s after the last delivery with intake
p99 < 100 ms, <= 1.1 broker messages per event.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.webhook_intake import (  # noqa: E402
    create_database,
    drop_database,
    free_port,
    signed_deliveries,
    wait_until_serving,
)

QUEUES = "intake,actions,maintenance"


# --- Setup ----------------------------------------------------------------------------------------


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO, env=env, check=True,
    )  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()


class Bench:
    """The organization every scenario's flow belongs to."""

    def __init__(self):
        from django.contrib.auth import get_user_model

        from portal.tenancy.models import Membership, Organization, Role
        from portal.vault.services import create_credential

        self.organization = Organization.objects.create(name="Bench", slug="bench")
        user = get_user_model().objects.create_user(email="bench@example.com", password=None)
        self.owner = Membership.objects.create(
            organization=self.organization, user=user, role=Role.OWNER
        )
        self.calendly = create_credential(
            self.organization, actor=self.owner, application="calendly", name="calendly",
            secrets={"personal_access_token": "bench-token-" + secrets.token_hex(8)},
        )  # fmt: skip

    def deploy(self, name: str, destination_url: str):
        """A deployed map-then-POST flow to ``destination_url``; returns (flow, hook_id, key)."""
        from portal.processflows.models import Deployment, RegistrationState
        from portal.processflows.services import create_processflow
        from portal.processflows.signing import new_signing_key
        from portal.vault.services import create_credential

        rest = create_credential(
            self.organization, actor=self.owner, application="rest", name=f"dest {name}",
            fields={"base_url": destination_url, "auth_type": "bearer"},
            secrets={"token": "bench-dest-" + secrets.token_hex(8)},
        )  # fmt: skip
        flow = create_processflow(
            self.organization,
            actor=self.owner,
            name=f"Runs benchmark {name}",
            definition={
                "trigger": {
                    "type": "webhook", "application": "calendly",
                    "credential": self.calendly.pk, "events": ["invitee.created"],
                    "scope": "organization",
                },
                "steps": [
                    {"name": "document", "type": "map",
                     "mapping": {"email": "{{ trigger.payload.email }}",
                                 "name": "{{ trigger.payload.name }}"}},
                    {"name": "forward", "type": "action", "application": "rest",
                     "credential": rest.pk, "action": "post_json",
                     "filters": [["path", "/bookings"]], "document": "{{ steps.document }}"},
                ],
            },
        )  # fmt: skip
        deployment = Deployment.objects.create(
            organization=self.organization,
            processflow=flow,
            version=flow.versions.first(),
            registration_state=RegistrationState.ACTIVE,
        )
        key = new_signing_key(deployment)
        deployment.save()
        return flow, flow.hook_id, key


# --- Processes ------------------------------------------------------------------------------------


class Processes:
    """Children in their own process groups, all ended on the way out."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], *, quiet: bool = True) -> subprocess.Popen:
        out = subprocess.DEVNULL if quiet else None
        child = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=out, stderr=out, start_new_session=True
        )
        self.children[name] = child
        return child

    def stop(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is None or child.poll() is not None:
            return
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()

    def stop_all(self) -> None:
        for name in list(self.children):
            self.stop(name)


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the live processes of a process group."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for_destination(port: int, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/count", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit("the destination did not start")


def destination_counts(port: int) -> dict:
    import requests

    return requests.get(f"http://127.0.0.1:{port}/count", timeout=10).json()


# --- Broker messages ------------------------------------------------------------------------------


class BrokerCounter:
    """Counts LPUSHes onto queues of one Redis database through keyspace notifications."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.db = int(urlsplit(url).path.lstrip("/") or 0)
        self.saved = self.client.config_get("notify-keyspace-events").get(
            "notify-keyspace-events", ""
        )
        wanted = set(self.saved) | {"K", "l"}
        self.client.config_set("notify-keyspace-events", "".join(sorted(wanted)))
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(**{f"__keyspace@{self.db}__:*": self._on_message})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.05, daemon=True)

    def _on_message(self, message) -> None:
        if message["data"] not in (b"lpush", b"rpush"):
            return
        queue = message["channel"].decode().split(":", 1)[1].split("\x06", 1)[0]
        if queue not in QUEUES.split(","):
            return
        with self.lock:
            self.counts[queue] = self.counts.get(queue, 0) + 1

    def take(self) -> dict[str, int]:
        """Messages per queue since the last call."""
        with self.lock:
            counts, self.counts = self.counts, {}
        return counts

    def close(self) -> None:
        self.thread.stop()
        self.client.config_set("notify-keyspace-events", self.saved)


# --- Sending --------------------------------------------------------------------------------------


async def _sender(port, queue, results, started, interval):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            index, request = queue.pop()
            if interval:
                delay = started + index * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            results.append((status, time.perf_counter() - sent, time.perf_counter()))
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def send(port: int, requests: list[bytes], connections: int, rate: float | None) -> dict:
    """Send every request over ``connections`` keep-alive connections, paced at ``rate``
    per second (None: as fast as they are answered)."""
    queue = list(reversed(list(enumerate(requests))))
    results: list[tuple[int, float, float]] = []
    started = time.perf_counter()

    async def main():
        interval = 1 / rate if rate else 0
        await asyncio.gather(
            *(_sender(port, queue, results, started, interval) for _ in range(connections))
        )

    asyncio.run(main())
    latencies = sorted(latency for status, latency, _ in results if 200 <= status < 300)
    statuses: dict[int, int] = {}
    for status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    last = max(at for _, _, at in results)
    return {
        "accepted": len(latencies),
        "statuses": statuses,
        "started": started,
        "last_delivery": last,
        "rate": len(latencies) / (last - started),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


# --- Watching runs --------------------------------------------------------------------------------


class RunWatch:
    """Samples the flow's succeeded runs four times a second, in a thread of its own."""

    def __init__(self, flow):
        self.flow = flow
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def succeeded(self) -> int:
        from portal.processflows.models import Run, RunStatus

        return (
            Run.objects.unscoped("the benchmark counts its flow's runs")
            .filter(processflow_id=self.flow.pk, status=RunStatus.SUCCEEDED)
            .count()
        )

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self.stopped.is_set():
                self.samples.append((time.perf_counter(), self.succeeded()))
                self.stopped.wait(0.25)
        finally:
            connection.close()

    def wait_for(self, count: int, timeout: float) -> float | None:
        """When ``count`` runs had succeeded (perf_counter), or None after ``timeout``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.samples and self.samples[-1][1] >= count:
                return self.samples[-1][0]
            time.sleep(0.05)
        return None

    def at(self, moment: float) -> int:
        before = [count for at, count in self.samples if at <= moment]
        return before[-1] if before else 0

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def unfinished(flow) -> dict[str, int]:
    from django.db.models import Count

    from portal.processflows.models import Run

    return dict(
        Run.objects.unscoped("the benchmark counts its flow's runs")
        .filter(processflow_id=flow.pk)
        .exclude(status="succeeded")
        .values_list("status")
        .annotate(n=Count("pk"))
    )


# --- Scenarios ------------------------------------------------------------------------------------


def scenario(bench, procs, counter, *, name, delay, events, senders, rate, port, timeout):
    """Deliveries to a fresh flow whose destination answers after ``delay``; the figures."""
    destination_port = free_port()
    procs.start(
        f"destination-{name}",
        [sys.executable, "benchmarks/destination.py", "--port", str(destination_port),
         "--delay", str(delay)],
    )  # fmt: skip
    wait_for_destination(destination_port)
    flow, hook_id, key = bench.deploy(name, f"http://127.0.0.1:{destination_port}")
    requests = signed_deliveries(events, f"/hooks/{hook_id}/", key, port, tag=f"{name}-")
    counter.take()
    cpu = {name: group_cpu_seconds(child.pid) for name, child in procs.children.items()}
    watch = RunWatch(flow)
    try:
        sent = send(port, requests, senders, rate)
        done_at = watch.wait_for(sent["accepted"], timeout)
    finally:
        watch.stop()
    messages = counter.take()
    cpu = {
        name: group_cpu_seconds(child.pid) - cpu[name]
        for name, child in procs.children.items()
        if name in cpu and not name.startswith("destination")
    }
    received = destination_counts(destination_port)
    procs.stop(f"destination-{name}")
    started, last = sent["started"], sent["last_delivery"]
    warm = started + (last - started) / 5
    window = watch.at(last) - watch.at(warm)
    figures = {
        "name": name,
        "destination_delay_s": delay,
        "events": events,
        "senders": senders,
        "offered_per_s": rate,
        "intake": {k: sent[k] for k in ("accepted", "statuses", "rate", "p50_ms", "p99_ms")},
        "runs_succeeded": watch.samples[-1][1] if watch.samples else 0,
        "runs_per_s_while_sending": window / (last - warm) if last > warm else None,
        "runs_per_s_end_to_end": (
            sent["accepted"] / (done_at - started) if done_at is not None else None
        ),
        "drained_s_after_last_delivery": done_at - last if done_at is not None else None,
        "broker_messages": messages,
        "broker_messages_per_event": sum(messages.values()) / max(1, sent["accepted"]),
        "destination": received,
        "cpu_ms_per_event": {
            name: round(1000 * used / max(1, sent["accepted"]), 2) for name, used in cpu.items()
        },
    }
    if done_at is None:
        figures["unfinished_runs"] = unfinished(flow)
    return figures


# --- Main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=6000, help="per sustained scenario")
    parser.add_argument("--offered", type=float, default=400, help="sustained deliveries/s")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--delays", default="0,0.2", help="destination delays (s), sustained")
    parser.add_argument("--burst", type=int, default=10_000, help="0 skips the burst")
    parser.add_argument("--burst-senders", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="smaller N: about a minute")
    parser.add_argument("--worker-pool", default="prefork")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="as runall starts it")
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument(
        "--gunicorn-threads", type=int, default=12, help="as portal/ops/gunicorn_config.py"
    )
    parser.add_argument("--no-beat", action="store_true", help="no sweeper")
    parser.add_argument("--worker-output", action="store_true", help="show the worker's log")
    parser.add_argument(
        "--access-log", metavar="FILE",
        help="gunicorn's access log with each request's time inside gunicorn (after a "
        "thread took it): the rest of a sender's latency is the wait for a thread",
    )  # fmt: skip
    parser.add_argument(
        "--profile", metavar="DIR", help="record the worker with py-spy into DIR (speedscope)"
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: only samples holding the GIL (CPU, not waits)",
    )
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/portal_bench_runs"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument(
        "--private-services", action="store_true",
        help="a PostgreSQL cluster and redis-server of the benchmark's own, on free ports "
        "(benchmarks/private_services.py), instead of --database-url / --redis-url",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600, help="per scenario, for the runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.private_services:
        from benchmarks.private_services import private_services

        with private_services() as services:
            args.database_url = services.database_url("portal_bench_runs")
            args.redis_url = services.redis_url(0)
            run(args)
    else:
        run(args)


def run(args) -> None:
    """Every scenario of ``args``, then the figures."""
    if args.quick:
        args.events, args.burst = min(args.events, 1500), min(args.burst, 2000)
    delays = [float(d) for d in args.delays.split(",") if d.strip()]

    env = os.environ.copy()
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        PORTAL_ENCRYPTION_KEYS="bench:"
        + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        DJANGO_SETTINGS_MODULE="benchmarks.bare_site",
        PYTHONPATH=str(REPO),
        LOG_LEVEL="WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        PORTAL_ALLOWED_PRIVATE_HOSTS="127.0.0.1",
    )
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    create_database(args.database_url)
    procs = Processes(env)
    counter = None
    report: dict = {"load_before": os.getloadavg(), "scenarios": []}
    try:
        migrate(env)
        bench = Bench()
        port = free_port()
        procs.start(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "portal.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", str(args.gunicorn_workers),
             "--worker-class", "gthread", "--threads", str(args.gunicorn_threads),
             "--keep-alive", "30", "--log-level", "warning",
             *(["--access-logfile", args.access_log, "--access-logformat", "%(M)s %(U)s"]
               if args.access_log else [])],
            quiet=False,
        )  # fmt: skip
        wait_until_serving(port, procs.children["gunicorn"])
        procs.start("relay", [sys.executable, "manage.py", "relay_outbox"])
        worker = procs.start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", QUEUES,
             "-P", args.worker_pool, "-c", str(args.worker_concurrency), "-l", "warning",
             "--without-gossip", "--without-mingle"],
            quiet=not args.worker_output,
        )  # fmt: skip
        if not args.no_beat:
            procs.start("beat", [sys.executable, "-m", "celery", "-A", "portal", "beat",
                                 "-l", "warning"])  # fmt: skip
        counter = BrokerCounter(args.redis_url)
        # Warm-up: imports, connections, the worker's first tasks.
        warm = scenario(bench, procs, counter, name="warmup", delay=0, events=200, senders=8,
                        rate=None, port=port, timeout=args.timeout)  # fmt: skip
        if warm["drained_s_after_last_delivery"] is None:
            raise SystemExit(f"warm-up runs did not finish: {warm}")
        profiler = None
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses",
                 "-r", "50", "-f", "speedscope", "-o",
                 f"{args.profile}/worker.speedscope.json", "-p", str(worker.pid),
                 *(["--gil"] if args.profile_gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for delay in delays:
            report["scenarios"].append(
                scenario(bench, procs, counter, name=f"sustained-{int(delay * 1000)}ms",
                         delay=delay, events=args.events, senders=args.senders,
                         rate=args.offered, port=port, timeout=args.timeout)
            )  # fmt: skip
        if args.burst:
            report["scenarios"].append(
                scenario(bench, procs, counter, name="burst", delay=0, events=args.burst,
                         senders=args.burst_senders, rate=None, port=port,
                         timeout=args.timeout)
            )  # fmt: skip
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=120)
        report["load_after"] = os.getloadavg()
    finally:
        if counter is not None:
            counter.close()
        procs.stop_all()
        from django.db import connections as db_connections

        db_connections.close_all()
        drop_database(args.database_url)
        redis.Redis.from_url(args.redis_url).flushdb()
    _print(report, args)


def _fmt(value, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def _print(report: dict, args) -> None:
    if args.json:
        print(json.dumps(report, indent=2))
        return
    load = " ".join(f"{x:.2f}" for x in report["load_before"])
    print(f"worker: -P {args.worker_pool} -c {args.worker_concurrency}; load before: {load}")
    for s in report["scenarios"]:
        intake = s["intake"]
        print(
            f"{s['name']}: {s['events']} events, {s['senders']} senders, offered "
            f"{_fmt(s['offered_per_s'], '{:.0f}/s') if s['offered_per_s'] else 'unpaced'}, "
            f"destination delay {s['destination_delay_s'] * 1000:.0f} ms"
        )
        print(
            f"  intake {intake['rate']:.0f}/s  p50 {intake['p50_ms']:.1f} ms  p99 "
            f"{intake['p99_ms']:.1f} ms  answers {intake['statuses']}"
        )
        print(
            f"  runs/s while sending {_fmt(s['runs_per_s_while_sending'])}   end to end "
            f"{_fmt(s['runs_per_s_end_to_end'])}   drained "
            f"{_fmt(s['drained_s_after_last_delivery'])} s after the last delivery   "
            f"succeeded {s['runs_succeeded']}"
        )
        print(
            f"  broker messages {s['broker_messages']} = "
            f"{s['broker_messages_per_event']:.2f}/event   destination {s['destination']}"
        )
        print(f"  CPU ms per event: {s['cpu_ms_per_event']}")
        if "unfinished_runs" in s:
            print(f"  NOT FINISHED: {s['unfinished_runs']}")
    if "load_after" in report:
        print("load after: " + " ".join(f"{x:.2f}" for x in report["load_after"]))


if __name__ == "__main__":
    main()
