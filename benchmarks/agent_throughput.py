"""On-Premise agent against the Cloud worker: events -> succeeded runs, and pickup latency.

What it does, on a throwaway database (created and dropped) and a Redis database it empties:

1. serves the portal with gunicorn (gthread) and starts the outbox relay, one Celery worker
   (``-Q intake,actions``) and the Calendly sandbox;
2. registers one agent program (``python -m agent register`` with a one-time key, its
   Calendly connection ``main`` saved in its own store) and runs it (``python -m agent run``);
3. deploys the same flow twice, to the Cloud agent and to the agent's group: a map step, then
   Calendly's ``users/me`` with the flow's credential (``--no-action``: the map step only);
4. for each side in turn: a burst of ``-n`` signed ``invitee.created`` deliveries, timed from
   the first delivery to the last succeeded run (runs/s); then ``--paced`` deliveries at
   ``--rate`` per second, whose **pickup latency** (run queued -> its first step started) is
   reported as p50/p95 (the burst's pickup is mostly time spent queued behind other runs).

CPU per run (user + system, from /proc) of each process group during the burst is printed
beside the wall-clock figures, because it is much less disturbed by other work on the
machine. ``--count-requests`` has gunicorn write an access log and counts the HTTP requests
per run by endpoint during each burst (the log costs gunicorn a little CPU on both sides).

    .venv/bin/python benchmarks/agent_throughput.py [-n 200] [--paced 40 --rate 4]
        [--concurrency 4] [--agent-slots N] [--no-action] [--count-requests] [--json]

Both sides get as many runs at once: the Celery worker runs ``--concurrency`` processes of
``PORTAL_WORKER_RUN_THREADS`` run threads each, so the agent gets that many run slots
(``--agent-slots`` sets another number).

Goals (issue 11): pickup p95 under 1 s; the agent's runs/s at least the Cloud worker's. With
the action step, both sides share Calendly's declared budget (500 requests a minute per
token), which then bounds the burst's rate on both sides alike.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.webhook_intake import (  # noqa: E402
    create_database,
    drop_database,
    free_port,
    load,
    signed_deliveries,
    wait_until_serving,
)

GOAL_PICKUP_P95_S = 1.0


def steps(credential, *, action: bool) -> list[dict]:
    found = [{"name": "document", "type": "map",
              "mapping": {"email": "{{ trigger.payload.email }}"}}]  # fmt: skip
    if action:
        found.append({"name": "me", "application": "calendly", "credential": credential,
                      "action": "users/me"})  # fmt: skip
    return found


def definition(credential, *, action: bool) -> dict:
    return {
        "trigger": {"type": "webhook", "application": "calendly", "credential": credential,
                    "events": ["invitee.created"], "options": {"scope": "organization"}},
        "steps": steps(credential, action=action),
    }  # fmt: skip


def prepare(env: dict[str, str], token: str):
    """Migrate; the organization, its owner, a Cloud credential and an agent with its key."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO, env=env, check=True,
    )  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from portal.agents import services as agent_services
    from portal.tenancy.models import Membership, Organization, Role
    from portal.vault.services import create_credential

    organization = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user(email="bench@example.com", password=None)
    owner = Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    credential = create_credential(
        organization, actor=owner, application="calendly", name="bench",
        secrets={"personal_access_token": token},
    )  # fmt: skip
    issued = agent_services.create_agent(organization, actor=owner, name="Bench agent")
    return organization, owner, credential, issued


def deploy(organization, owner, name: str, flow_definition: dict, *, group=None):
    """An active deployment with a signing key, as deploying makes (no subscription: the
    benchmark posts the deliveries itself)."""
    from portal.processflows.models import Deployment, RegistrationState
    from portal.processflows.services import create_processflow
    from portal.processflows.signing import new_signing_key

    flow = create_processflow(
        organization, actor=owner, name=name, definition=flow_definition, agent_group=group
    )
    deployment = Deployment(
        organization=organization, processflow=flow, version=flow.versions.first(),
        registration_state=RegistrationState.ACTIVE, agent_group=group,
    )  # fmt: skip
    key = new_signing_key(deployment)
    deployment.save()
    return flow, key


def wait_runs(flow, count: int, timeout: float) -> float:
    """Seconds until ``count`` runs of ``flow`` succeeded (SystemExit on timeout)."""
    from portal.processflows.models import Run, RunStatus

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        done = (
            Run.objects.unscoped("the benchmark counts its runs")
            .filter(processflow=flow, status=RunStatus.SUCCEEDED)
            .count()
        )
        if done >= count:
            return time.perf_counter() - started
        time.sleep(0.1)
    raise SystemExit(f"only {done} of {count} runs of {flow.name} succeeded in {timeout:.0f} s")


def pickups(flow, since) -> list[float]:
    """Seconds from each run's creation (queued) to its first step's start."""
    from portal.processflows.models import Run, StepRun

    runs = Run.objects.unscoped("the benchmark reads its runs").filter(
        processflow=flow, created_at__gte=since
    )
    first = {
        row.run_id: row.started_at
        for row in StepRun.objects.filter(run__in=runs, position=0).only("run_id", "started_at")
    }
    return [(first[r.pk] - r.created_at).total_seconds() for r in runs if first.get(r.pk)]


def run_seconds(flow, since) -> list[float]:
    """Seconds each run took from being started (leased) to being finished."""
    from portal.processflows.models import Run

    runs = Run.objects.unscoped("the benchmark reads its runs").filter(
        processflow=flow, created_at__gte=since, finished_at__isnull=False
    )
    return [(r.finished_at - r.started_at).total_seconds() for r in runs if r.started_at]


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids`` and all their descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    wanted = set(pids)
    while True:
        more = {pid for pid, (parent, _) in stats.items() if parent in wanted} - wanted
        if not more:
            break
        wanted |= more
    return sum(stats[pid][1] for pid in wanted if pid in stats) / ticks


def requests_by_endpoint(log: Path | None, start: int, end: int) -> dict[str, int]:
    """HTTP requests gunicorn logged between two offsets of its access log, by endpoint
    (ids replaced by ``<id>``, the query left out)."""
    if log is None:
        return {}
    with log.open("rb") as file:
        file.seek(start)
        text = file.read(end - start).decode(errors="replace")
    counts: dict[str, int] = {}
    for match in re.finditer(r'"([A-Z]+) ([^ ?"]+)', text):
        path = re.sub(r"/hooks/[^/]+/", "/hooks/<hook>/", match.group(2))
        endpoint = f"{match.group(1)} {re.sub(r'/[0-9]+|/[a-z]+:[0-9:]+', '/<id>', path)}"
        counts[endpoint] = counts.get(endpoint, 0) + 1
    return dict(sorted(counts.items()))


def measure(port, flow, key, *, n, paced, rate, tag, timeout, processes, log) -> dict:
    from django.utils import timezone

    burst_since = timezone.now()
    cpu_before = {name: cpu_seconds(pids) for name, pids in processes.items()}
    log_start = log.stat().st_size if log else 0
    started = time.perf_counter()
    sent = load(port, signed_deliveries(n, f"/hooks/{flow.hook_id}/", key, port, tag + "b"), 8)
    wait_runs(flow, n, timeout)
    elapsed = time.perf_counter() - started
    cpu_ms = {
        name: round(1000 * (cpu_seconds(pids) - cpu_before[name]) / n, 1)
        for name, pids in processes.items()
    }
    requests = requests_by_endpoint(log, log_start, log.stat().st_size if log else 0)
    load_average = os.getloadavg()[0]
    burst_pickup = pickups(flow, burst_since)
    durations = run_seconds(flow, burst_since)
    paced_since = timezone.now()
    deliveries = signed_deliveries(paced, f"/hooks/{flow.hook_id}/", key, port, tag + "p")
    for delivery in deliveries:
        load(port, [delivery], 1)
        time.sleep(1 / rate)
    wait_runs(flow, n + paced, timeout)
    paced_pickup = pickups(flow, paced_since)
    return {
        "accepted": sent["accepted"],
        "runs": n,
        "seconds": elapsed,
        "runs_per_second": n / elapsed,
        "burst_pickup_p50_s": statistics.median(burst_pickup),
        "run_p50_s": statistics.median(durations),
        "pickup_p50_s": statistics.median(paced_pickup),
        "pickup_p95_s": statistics.quantiles(paced_pickup, n=20)[18],
        "paced_runs": len(paced_pickup),
        "cpu_ms_per_run": cpu_ms,
        "requests_per_run": {k: round(v / n, 2) for k, v in requests.items()},
        "load_average_1m": load_average,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=200, help="burst size per side")
    parser.add_argument("--paced", type=int, default=40, help="paced deliveries per side")
    parser.add_argument("--rate", type=float, default=4.0, help="paced deliveries per second")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--agent-slots", type=int, default=None,
                        help="runs at once on the agent (default: the worker's)")  # fmt: skip
    parser.add_argument("--no-action", action="store_true", help="the map step only")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/portal_bench_agent"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--count-requests", action="store_true",
                        help="count HTTP requests per run (gunicorn access log)")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import redis

    from connectors.calendly.sandbox import CalendlySandbox, seed

    port = free_port()
    sandbox = CalendlySandbox(rate_limit_per_minute=100_000)
    sandbox.start()
    agent_data = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    env = os.environ.copy()
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env.update(
        DATABASE_URL=args.database_url, REDIS_URL=args.redis_url,
        PORTAL_ENCRYPTION_KEYS=f"bench:{kek}",
        DJANGO_SETTINGS_MODULE="portal.settings", PYTHONPATH=str(REPO), LOG_LEVEL="WARNING",
        DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0", PORTAL_BASE_URL=f"http://127.0.0.1:{port}",
        CALENDLY_API_BASE_URL=sandbox.url, PORTAL_ALLOWED_PRIVATE_HOSTS="127.0.0.1",
    )  # fmt: skip
    agent_env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
    agent_env.update(CONNECT_AGENT_DATA=str(agent_data), CONNECT_AGENT_LOG_LEVEL="WARNING",
                     CONNECT_AGENT_ALLOWED_PRIVATE_HOSTS="127.0.0.1")  # fmt: skip
    redis.Redis.from_url(args.redis_url).flushdb()
    create_database(args.database_url)
    children: list[subprocess.Popen] = []
    quiet = {"cwd": REPO, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    log = agent_data.parent / f"{agent_data.name}-access.log" if args.count_requests else None
    access = ["--access-logfile", str(log)] if log else []
    try:
        organization, owner, credential, issued = prepare(env, seed.OWNER_TOKEN)
        children.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "portal.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread",
             "--threads", "8", "--keep-alive", "30", "--log-level", "warning", *access],
            env=env, **quiet,
        ))  # fmt: skip
        wait_until_serving(port, children[-1])
        subprocess.run(
            [sys.executable, "-m", "agent", "register", "--portal", f"http://127.0.0.1:{port}",
             "--key", issued.key], env=agent_env, cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-c",
             "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'agent.settings'; "
             "django.setup(); from agent.local import store; "
             "store.offer_applications([{'application': 'calendly', 'title': 'Calendly'}]); "
             "store.set_enabled({'calendly'}); "
             "c = store.save_connection(application='calendly', name='main', fields={}, "
             f"secrets={{'personal_access_token': {seed.OWNER_TOKEN!r}}}); "
             "store.validate_connection(c)"],
            env=agent_env, cwd=REPO, check=True,
        )  # fmt: skip
        from django.conf import settings

        slots = args.agent_slots or args.concurrency * settings.PORTAL_WORKER_RUN_THREADS
        children.append(subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--listen", f"127.0.0.1:{free_port()}",
             "--concurrency", str(slots)], env=agent_env, **quiet,
        ))  # fmt: skip
        children.append(subprocess.Popen(
            [sys.executable, "manage.py", "relay_outbox"], env=env, **quiet
        ))  # fmt: skip
        children.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "intake,actions",
             "-c", str(args.concurrency), "-l", "warning", "--without-gossip",
             "--without-mingle"], env=env, **quiet,
        ))  # fmt: skip
        from portal.agents.models import Agent

        deadline = time.monotonic() + 120
        while not Agent.objects.unscoped("bench").get(pk=issued.agent.pk).applications:
            if time.monotonic() > deadline:
                raise SystemExit("the agent never reported its Calendly connection")
            time.sleep(0.5)
        action = not args.no_action
        cloud, cloud_key = deploy(
            organization, owner, "Cloud", definition(credential.pk, action=action)
        )
        onprem, onprem_key = deploy(
            organization, owner, "On-premise", definition("main", action=action),
            group=issued.agent.group,
        )  # fmt: skip
        report = {"runs_per_side": args.runs, "action_step": action,
                  "concurrency": args.concurrency, "agent_slots": slots}  # fmt: skip
        gunicorn, agent, relay, worker = (child.pid for child in children)
        processes = {"gunicorn": [gunicorn], "agent": [agent], "relay": [relay],
                     "celery": [worker]}  # fmt: skip
        report["cloud"] = measure(port, cloud, cloud_key, n=args.runs, paced=args.paced,
                                  rate=args.rate, tag="c", timeout=args.timeout,
                                  processes=processes, log=log)  # fmt: skip
        report["agent"] = measure(port, onprem, onprem_key, n=args.runs, paced=args.paced,
                                  rate=args.rate, tag="a", timeout=args.timeout,
                                  processes=processes, log=log)  # fmt: skip
    finally:
        for child in reversed(children):
            child.terminate()
        for child in reversed(children):
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_database(args.database_url)
        redis.Redis.from_url(args.redis_url).flushdb()
        sandbox.stop()
        shutil.rmtree(agent_data, ignore_errors=True)
        if log:
            log.unlink(missing_ok=True)
    _print(report, args)


def _print(report: dict, args) -> None:
    if args.json:
        print(json.dumps(report, indent=2))
        return
    steps_text = "map + Calendly users/me" if report["action_step"] else "map only"
    print(f"{report['runs_per_side']} runs per side ({steps_text}), {report['concurrency']} "
          f"worker processes, {report['agent_slots']} agent slots")  # fmt: skip
    print(f"{'':14}{'runs/s':>10}{'pickup p50':>13}{'pickup p95':>13}{'burst p50':>12}"
          f"{'run p50':>10}")  # fmt: skip
    for side in ("cloud", "agent"):
        r = report[side]
        print(f"{side:14}{r['runs_per_second']:>10.1f}{r['pickup_p50_s']:>12.3f}s"
              f"{r['pickup_p95_s']:>12.3f}s{r['burst_pickup_p50_s']:>11.2f}s"
              f"{r['run_p50_s']:>9.2f}s")  # fmt: skip
    for side in ("cloud", "agent"):
        r = report[side]
        cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in r["cpu_ms_per_run"].items())
        print(f"{side} CPU ms per run: {cpu} (load average {r['load_average_1m']:.1f})")
        if r["requests_per_run"]:
            requests = ", ".join(f"{k} {v:g}" for k, v in r["requests_per_run"].items())
            print(f"{side} HTTP requests per run: {requests}")
    agent, cloud = report["agent"], report["cloud"]
    fast = agent["pickup_p95_s"] < GOAL_PICKUP_P95_S
    keeps_up = agent["runs_per_second"] >= cloud["runs_per_second"]
    print(f"goal pickup p95 < {GOAL_PICKUP_P95_S:.0f} s: {'met' if fast else 'NOT met'}; "
          f"agent runs/s >= Cloud's: {'met' if keeps_up else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
