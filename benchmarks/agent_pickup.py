"""Agent pickup latency: how soon a run queued for an agent group reaches its waiting agent.

What it does, on a throwaway PostgreSQL database (created and dropped):

1. makes an organization with a registered agent and a triggered processflow deployed to its
   group (one map step);
2. serves the portal with gunicorn (gthread, as in the image), once with ``REDIS_URL`` (a
   queued run wakes the waiting long-poll through Redis) and once without (the embedded
   mode: the long-poll re-checks the database every half second);
3. for each run: the agent's long-poll (``GET jobs?wait=25`` over HTTP) is waiting; the
   benchmark turns an accepted event into its run as the worker does
   (``runs.start_run_for_event``, which wakes the group); the time until the poll answers
   with the run is the pickup latency; the agent then finishes the run (``finish``);
4. reports p50/p95/max pickup in milliseconds for both modes.

    .venv/bin/python benchmarks/agent_pickup.py [-n 40] [--json]

Needs PostgreSQL and Redis (``--database-url`` / ``--redis-url``; the Redis keys it uses are
the group's wake-up list only, deleted afterwards). Goal (issue 11): pickup p95 under 1 s.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_P95_MS = 1000


def _admin(url: str, statement: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(env: dict[str, str]) -> dict:
    """Migrate; create the organization, a registered agent and a deployed flow."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO, env=env, check=True,
    )  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from portal.agents import services as agents
    from portal.processflows import services as flows
    from portal.tenancy.models import Membership, Organization, Role

    organization = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user(email="bench@example.com", password=None)
    owner = Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    issued = agents.create_agent(organization, actor=owner, name="Plant A")
    registered = agents.register(key=issued.key, hostname="bench", version="bench")
    agents.heartbeat(
        registered.agent,
        applications=[{"application": "calendly", "name": "main", "valid": True}],
    )
    flow = flows.create_processflow(
        organization, actor=owner, name="Pickup", agent_group=registered.agent.group,
        definition={
            "trigger": {"type": "webhook", "application": "calendly", "credential": "main",
                        "events": ["invitee.created"], "options": {"scope": "organization"}},
            "steps": [{"name": "doc", "type": "map",
                       "mapping": {"e": "{{ trigger.payload.email }}"}}],
        },
    )  # fmt: skip
    deployment = flows.deploy(organization, actor=owner, processflow_id=flow.pk)
    return {
        "organization": organization,
        "deployment": deployment,
        "secret": registered.secret,
        "group": registered.agent.group_id,
    }


def serve(env: dict[str, str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "portal.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--worker-class", "gthread", "--threads", "8", "--timeout", "60",
        ],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("gunicorn exited before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def measure(world: dict, base: str, count: int) -> list[float]:
    """Pickup latencies in ms of ``count`` runs, one at a time."""
    import requests
    from django.db import connection

    from portal.processflows import runs
    from portal.processflows.models import Outbox, TriggerEvent

    session = requests.Session()
    session.headers["Authorization"] = f"Agent {world['secret']}"
    session.get(f"{base}jobs", params={"wait": 0}, timeout=60)  # the subscribe job
    samples = []
    for index in range(count):
        deployment = world["deployment"]
        event = TriggerEvent.objects.create(
            organization_id=deployment.organization_id, deployment=deployment,
            source=TriggerEvent.Source.WEBHOOK, event_name="invitee.created",
            dedupe_key=f"bench:{time.time_ns()}:{index}",
            body=json.dumps({"event": "invitee.created",
                             "payload": {"email": "ada@example.com"}}).encode(),
        )  # fmt: skip
        Outbox.objects.create(event=event)
        answer: list = []

        def poll(answer=answer):
            answer.append(session.get(f"{base}jobs", params={"wait": 25}, timeout=90))
            answer.append(time.perf_counter())

        waiting = threading.Thread(target=poll)
        waiting.start()
        time.sleep(0.3)  # the poll is waiting by now
        queued = time.perf_counter()
        run = runs.start_run_for_event(deployment.organization_id, event.pk)
        waiting.join(timeout=90)
        (job,) = answer[0].json()["jobs"]
        assert job["id"] == f"run:{run.pk}", job["id"]
        samples.append((answer[1] - queued) * 1000)
        report = {"lease": job["run"]["lease"], "finish": {"status": "succeeded", "output": {}}}
        session.post(f"{base}runs/{run.pk}/report", json=report, timeout=60)
    connection.close()
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "runs": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(statistics.quantiles(ordered, n=100)[94], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=40, help="runs per mode")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/portal_bench_agent_pickup"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env = os.environ.copy()
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        PORTAL_ENCRYPTION_KEYS="bench:"
        + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        DJANGO_SETTINGS_MODULE="portal.settings",
        PYTHONPATH=str(REPO),
        LOG_LEVEL="WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
    )
    name = urlsplit(args.database_url).path.lstrip("/")
    _admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(args.database_url, f'CREATE DATABASE "{name}"')
    results = {}
    world: dict = {}
    var_dir = tempfile.mkdtemp(prefix="portal-bench-")
    env["PORTAL_VAR_DIR"] = var_dir
    try:
        world = prepare(env)
        from django.conf import settings

        for mode, redis_url in (("redis", args.redis_url), ("database", "")):
            settings.REDIS_URL = redis_url  # this process wakes the group, or not
            port = free_port()
            server = serve({**env, "REDIS_URL": redis_url}, port)
            try:
                samples = measure(world, f"http://127.0.0.1:{port}/api/v1/agent/", args.runs)
            finally:
                os.killpg(server.pid, 15)
                server.wait(timeout=30)
            results[mode] = summary(samples)
    finally:
        import redis

        if world:
            redis.Redis.from_url(args.redis_url).delete(f"agents:group:{world['group']}:wake")
        shutil.rmtree(var_dir, ignore_errors=True)
        from django.db import connections

        connections.close_all()
        _admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        print(json.dumps(results))
        return
    for mode, figures in results.items():
        wake = "Redis wake-up" if mode == "redis" else "database re-check (no Redis)"
        print(
            f"{wake:30} runs {figures['runs']:4}  pickup p50 {figures['p50_ms']:7.1f} ms  "
            f"p95 {figures['p95_ms']:7.1f} ms  max {figures['max_ms']:7.1f} ms"
            f"  (goal p95 < {GOAL_P95_MS} ms)"
        )


if __name__ == "__main__":
    main()
