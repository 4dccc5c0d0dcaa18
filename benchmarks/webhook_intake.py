"""Webhook intake throughput: signed deliveries over loopback to gunicorn + PostgreSQL.

What it does, on a throwaway database (created and dropped):

1. deploys a triggered processflow (one map step, so processing needs no network) and gives
   its deployment a signing key, as deploying does;
2. serves the portal with gunicorn (``benchmarks.bare_site`` settings: the portal plus a bare
   ``/bench/bare/`` view as the baseline);
3. sends signed Calendly ``invitee.created`` deliveries, each a distinct event, over
   keep-alive connections from an asyncio client, alternating rounds against the bare
   endpoint and against ``/hooks/<id>/`` so both see the same machine;
4. reports accepted (durably stored, 202) events per second, p50/p99 latency, and the same
   for the bare endpoint; checks every accepted event is in the database;
5. starts one Celery worker process and reports how many of those events per second it turns
   into succeeded runs.

    .venv/bin/python benchmarks/webhook_intake.py [-n 8000] [--connections 8,32] [--json]

Needs PostgreSQL and Redis (``--database-url`` / ``--redis-url``; defaults on 127.0.0.1).
Targets on a 2-core machine: at least 500 durable events/s with p99 under 50 ms, and at
least 40% of the bare endpoint's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_RATE = 500
TARGET_P99_MS = 50
TARGET_SHARE = 0.40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- The throwaway database and the deployment under test ---------------------------------------


def create_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(env: dict[str, str]) -> tuple[str, str]:
    """Migrate, then create the organization, flow and deployment; returns (hook_id, key)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO, env=env, check=True,
    )  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from portal.processflows.models import Deployment, RegistrationState
    from portal.processflows.services import create_processflow
    from portal.processflows.signing import new_signing_key
    from portal.tenancy.models import Membership, Organization, Role
    from portal.vault.services import create_credential

    organization = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user(email="bench@example.com", password=None)
    owner = Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    credential = create_credential(
        organization, actor=owner, application="calendly", name="bench",
        secrets={"personal_access_token": "bench-token-" + secrets.token_hex(8)},
    )  # fmt: skip
    flow = create_processflow(
        organization,
        actor=owner,
        name="Intake benchmark",
        definition={
            "trigger": {
                "type": "webhook", "application": "calendly", "credential": credential.pk,
                "events": ["invitee.created"], "scope": "organization",
            },
            "steps": [
                {"name": "document", "type": "map",
                 "mapping": {"email": "{{ trigger.payload.email }}"}},
            ],
        },
    )  # fmt: skip
    deployment = Deployment.objects.create(
        organization=organization,
        processflow=flow,
        version=flow.versions.first(),
        registration_state=RegistrationState.ACTIVE,
    )
    key = new_signing_key(deployment)
    deployment.save()
    return flow.hook_id, key


# --- Requests -------------------------------------------------------------------------------------


def signed_deliveries(count: int, path: str, key: str, port: int, tag: str = "") -> list[bytes]:
    """``count`` distinct signed invitee.created deliveries as raw HTTP/1.1 requests
    (``tag`` makes each batch's events distinct from every other batch's)."""
    from connectors.calendly.webhooks import signature

    now = int(time.time())
    requests = []
    for n in range(count):
        body = json.dumps(
            {
                "event": "invitee.created",
                "created_at": "2026-11-24T10:00:00.000000Z",
                "created_by": "https://api.calendly.com/users/BENCH",
                "payload": {
                    "uri": f"https://api.calendly.com/scheduled_events/E/invitees/{tag}{n:08d}",
                    "email": f"invitee{n}@example.com",
                    "name": f"Invitee {n}",
                    "status": "active",
                },
            }
        ).encode()
        header = f"t={now},v1={signature(key, body, now)}"
        requests.append(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\n"
                f"Calendly-Webhook-Signature: {header}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return requests


async def _connection(port: int, queue: list[bytes], results: list[tuple[int, float]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            results.append((status, time.perf_counter() - started))
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def load(port: int, requests: list[bytes], connections: int) -> dict:
    """Send every request over ``connections`` keep-alive connections; figures of the run."""
    queue = list(reversed(requests))
    results: list[tuple[int, float]] = []

    async def main():
        await asyncio.gather(*(_connection(port, queue, results) for _ in range(connections)))

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for status, latency in results if 200 <= status < 300)
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "requests": len(results),
        "accepted": len(latencies),
        "statuses": statuses,
        "seconds": elapsed,
        "rate": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
    }


def wait_until_serving(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("gunicorn exited before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


# --- Processing by one worker ---------------------------------------------------------------------


def measure_processing(env: dict[str, str], expected: int, timeout: float) -> dict:
    """Start the relay and one solo worker; how fast accepted events become succeeded runs."""
    from portal.processflows.models import Run, RunStatus

    quiet = {"cwd": REPO, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    relay = subprocess.Popen([sys.executable, "manage.py", "relay_outbox"], **quiet)
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "intake,actions",
            "-c", "1", "-P", "solo", "-l", "warning", "--without-gossip", "--without-mingle",
        ],
        **quiet,
    )  # fmt: skip
    started = time.perf_counter()
    done = 0
    try:
        while time.perf_counter() - started < timeout:
            done = (
                Run.objects.unscoped("the benchmark counts every run")
                .filter(status=RunStatus.SUCCEEDED)
                .count()
            )
            if done >= expected:
                break
            time.sleep(0.5)
    finally:
        for process in (worker, relay):
            process.terminate()
            process.wait(timeout=30)
    elapsed = time.perf_counter() - started
    return {"runs_succeeded": done, "seconds": elapsed, "rate": done / elapsed}


# --- Main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--deliveries", type=int, default=8000, help="per level")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per side")
    parser.add_argument(
        "--connections", default="8,32", help="concurrent senders, one level after another"
    )
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument(
        "--gunicorn-threads", type=int, default=12, help="as portal/ops/gunicorn_config.py"
    )
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/portal_bench_intake"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--process-timeout", type=float, default=600)
    parser.add_argument("--skip-processing", action="store_true")
    parser.add_argument(
        "--private-services", action="store_true",
        help="a PostgreSQL cluster and redis-server of the benchmark's own, on free ports "
        "(benchmarks/private_services.py), instead of --database-url / --redis-url",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.private_services:
        from benchmarks.private_services import private_services

        with private_services() as services:
            args.database_url = services.database_url("portal_bench_intake")
            args.redis_url = services.redis_url(0)
            run(args)
    else:
        run(args)


def run(args) -> None:
    """Every level of ``args``, then the figures."""
    levels = [int(level) for level in args.connections.split(",")]

    env = os.environ.copy()
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        PORTAL_ENCRYPTION_KEYS="bench:"
        + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        DJANGO_SETTINGS_MODULE="benchmarks.bare_site",
        PYTHONPATH=str(REPO),
        LOG_LEVEL="WARNING",
        # Production settings (no query logging), over plain HTTP on loopback.
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
    )
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    create_database(args.database_url)
    gunicorn = None
    try:
        hook_id, key = prepare(env)
        port = free_port()
        gunicorn = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "portal.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", str(args.gunicorn_workers),
                "--worker-class", "gthread", "--threads", str(args.gunicorn_threads),
                "--keep-alive", "30", "--log-level", "warning",
            ],
            cwd=REPO, env=env,
        )  # fmt: skip
        wait_until_serving(port, gunicorn)
        per_round = max(1, args.deliveries // args.rounds)
        bare_requests = signed_deliveries(per_round, "/bench/bare/", key, port)
        load(port, bare_requests[:500], max(levels))  # warm-up: imports, connections
        report: dict = {"levels": []}
        for connections in levels:
            bare, hooks = [], []
            for round_number in range(args.rounds):
                bare.append(load(port, list(bare_requests), connections))
                deliveries = signed_deliveries(
                    per_round,
                    f"/hooks/{hook_id}/",
                    key,
                    port,
                    tag=f"c{connections}r{round_number}-",
                )
                hooks.append(load(port, deliveries, connections))
            level = {"connections": connections, "intake": _combine(hooks), "bare": _combine(bare)}
            level["share_of_bare"] = level["intake"]["rate"] / level["bare"]["rate"]
            report["levels"].append(level)
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
        gunicorn = None

        from portal.processflows.models import Outbox, TriggerEvent

        accepted = sum(level["intake"]["accepted"] for level in report["levels"])
        report |= {
            "accepted": accepted,
            "stored_events": TriggerEvent.objects.unscoped("the benchmark counts all").count(),
            "outbox_entries": Outbox.objects.count(),
        }
        if not args.skip_processing:
            report["processing"] = measure_processing(env, accepted, args.process_timeout)
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        from django.db import connections as db_connections

        db_connections.close_all()
        drop_database(args.database_url)
        redis.Redis.from_url(args.redis_url).flushdb()
    _print(report, args)


def _combine(runs: list[dict]) -> dict:
    """Figures over all rounds: total rate, and the median round's latencies."""
    accepted = sum(r["accepted"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    statuses: dict[int, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "accepted": accepted,
        "statuses": statuses,
        "rate": accepted / seconds if seconds else 0.0,
        "p50_ms": statistics.median(r["p50_ms"] for r in runs if r["p50_ms"] is not None),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs if r["p99_ms"] is not None),
    }


def _print(report: dict, args) -> None:
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"accepted (202): {report['accepted']}, stored events: {report['stored_events']}, "
        f"outbox entries: {report['outbox_entries']}"
    )
    print(f"targets: >= {TARGET_RATE} events/s, p99 < {TARGET_P99_MS} ms, >= "
          f"{100 * TARGET_SHARE:.0f}% of the bare endpoint's rate")  # fmt: skip
    for level in report["levels"]:
        intake, bare = level["intake"], level["bare"]
        print(f"{level['connections']} concurrent senders:")
        print(
            f"  intake: {intake['rate']:7.1f} events/s    p50 {intake['p50_ms']:5.1f} ms  "
            f"p99 {intake['p99_ms']:5.1f} ms  answers {intake['statuses']}"
        )
        print(
            f"  bare  : {bare['rate']:7.1f} requests/s  p50 {bare['p50_ms']:5.1f} ms  "
            f"p99 {bare['p99_ms']:5.1f} ms"
        )
        print(f"  intake / bare: {100 * level['share_of_bare']:.0f}%")
    if "processing" in report:
        processing = report["processing"]
        print(
            f"one worker (solo pool) with the relay: {processing['rate']:.1f} events/s "
            f"processed into succeeded runs ({processing['runs_succeeded']} in "
            f"{processing['seconds']:.1f} s)"
        )


if __name__ == "__main__":
    main()
