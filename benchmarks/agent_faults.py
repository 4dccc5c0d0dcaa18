"""On-Premise agent under faults: "never lose, never leak" at full scale (issue 11).

On a throwaway database and a Redis database it empties, with real processes: the portal
served by gunicorn (reached by the agents through a TCP proxy that can be cut), the outbox
relay, one Celery worker (``-Q intake,actions,maintenance``), the Calendly sandbox, and one
or two ``python -m agent run`` processes registered with one-time keys. A flow deployed to
the agents' group maps each booking, then POSTs it (``rest`` ``post_json`` with the agent's
local connection ``dest``) to a loopback destination (``benchmarks/destination.py``,
answering after ``--delay``) that counts calls and distinct Idempotency-Keys (a destination
honouring the key applies each once). ``--events`` signed ``invitee.created`` deliveries go
to intake at once; then, once a third of the runs succeeded, the fault:

- ``kill``: SIGKILL the agent, start it again at once; again at two thirds (two kills);
- ``cut``: the network between agent and portal cut for ``--cut`` seconds (the proxy closes
  every connection and refuses new ones), the portal (gunicorn) restarted meanwhile;
- ``group``: two agents in one group; the one holding the most runs is SIGKILLed and not
  started again: the other finishes everything.

It waits until every accepted event has a succeeded run and prints: accepted events, runs,
succeeded, lost (accepted events without a succeeded run), events with more than one run,
calls at the destination and distinct Idempotency-Keys (calls - keys: steps sent again,
which the key makes harmless), keys not one per run, and time to recover: for each fault,
seconds from the fault (``cut``: from the network's return) until every run that was in
flight at the fault had succeeded, beside the lease bound.

    .venv/bin/python benchmarks/agent_faults.py kill [--events 1000] [--lease 20] [--delay 0.05]
    .venv/bin/python benchmarks/agent_faults.py cut [--events 1000] [--cut 60]
    .venv/bin/python benchmarks/agent_faults.py group [--events 300]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.destination import Destination  # noqa: E402
from benchmarks.webhook_intake import (  # noqa: E402
    create_database,
    drop_database,
    free_port,
    load,
    signed_deliveries,
    wait_until_serving,
)
from tests.agent.forwarding import forwarding_definition  # noqa: E402
from tests.netproxy import TcpProxy  # noqa: E402

SCENARIOS = ("kill", "cut", "group")


CONFIGURE = """
import os, django
os.environ['DJANGO_SETTINGS_MODULE'] = 'agent.settings'
django.setup()
from django.core.management import call_command
call_command('migrate', verbosity=0)
from agent.local import store
store.offer_applications([{'application': 'calendly', 'title': 'Calendly'},
                          {'application': 'rest', 'title': 'REST'}])
store.set_enabled({'calendly', 'rest'})
c = store.save_connection(application='calendly', name='main', fields={},
                          secrets={'personal_access_token': %(token)r})
print(store.validate_connection(c).message)
d = store.save_connection(application='rest', name='dest',
                          fields={'base_url': %(dest)r, 'auth_type': 'bearer'},
                          secrets={'token': 'dest-token-0123456789abcdef'})
print(store.validate_connection(d).message)
"""


class Processes:
    """Children in process groups of their own, with logs in ``folder``; CPU read from /proc."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.running: dict[str, subprocess.Popen] = {}
        self.cpu_seconds: dict[str, float] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.folder / f"{name}-{time.monotonic_ns()}.log").open("wb")
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        process.log_path = Path(log.name)
        self.running[name] = process
        return process

    def _note_cpu(self, name: str, process: subprocess.Popen) -> None:
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        ticks = os.sysconf("SC_CLK_TCK")
        kind = name.split("-")[0]
        self.cpu_seconds[kind] = self.cpu_seconds.get(kind, 0.0) + (
            (int(fields[11]) + int(fields[12])) / ticks
        )

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        self._note_cpu(name, process)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        self._note_cpu(name, process)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)


class Bench:
    """The portal, its agents and the destination for one scenario."""

    def __init__(self, args):
        from connectors.calendly.sandbox import CalendlySandbox

        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-agent-faults-"))
        self.children = Processes(self.work)
        self.sandbox = CalendlySandbox(rate_limit_per_minute=1_000_000)
        self.sandbox.start()
        # Answers after --delay, so that a fault finds forwards on the wire.
        self.destination = Destination(("127.0.0.1", 0), args.delay)
        threading.Thread(target=self.destination.serve_forever, daemon=True).start()
        self.destination.url = f"http://127.0.0.1:{self.destination.server_address[1]}"
        self.port = free_port()
        self.proxy = TcpProxy(("127.0.0.1", self.port)).__enter__()
        kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        env = os.environ.copy()
        env.update(
            DATABASE_URL=args.database_url, REDIS_URL=args.redis_url,
            PORTAL_ENCRYPTION_KEYS=f"bench:{kek}", DJANGO_SETTINGS_MODULE="portal.settings",
            PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING", DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="127.0.0.1",
            SECURE_SSL_REDIRECT="0", PORTAL_BASE_URL=f"http://127.0.0.1:{self.port}",
            CALENDLY_API_BASE_URL=self.sandbox.url, PORTAL_ALLOWED_PRIVATE_HOSTS="127.0.0.1",
            PORTAL_RUN_LEASE_SECONDS=str(args.lease), PORTAL_SWEEP_SECONDS="5",
        )  # fmt: skip
        self.env = env
        self.agents: dict[str, dict] = {}

    # --- Set-up ------------------------------------------------------------------------------

    def prepare(self, agent_names: list[str]):
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=REPO, env=self.env, check=True,
        )  # fmt: skip
        os.environ.update(self.env)
        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from portal.agents import services as agent_services
        from portal.processflows.models import Deployment, RegistrationState
        from portal.processflows.services import create_processflow
        from portal.processflows.signing import new_signing_key
        from portal.tenancy.models import Membership, Organization, Role

        organization = Organization.objects.create(name="Bench", slug="bench")
        user = get_user_model().objects.create_user(email="bench@example.com", password=None)
        owner = Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
        self.start_portal()
        group = None
        for name in agent_names:
            issued = agent_services.create_agent(
                organization, actor=owner, name=f"Bench {name}",
                group_id=group.pk if group else None,
            )  # fmt: skip
            group = issued.agent.group
            self.register(name, issued)
        self.children.start("relay", [sys.executable, "manage.py", "relay_outbox"], self.env)
        self.children.start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q",
             "intake,actions,maintenance", "-c", "2", "-l", "warning", "--without-gossip",
             "--without-mingle"],
            self.env,
        )  # fmt: skip
        self.children.start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "portal", "beat", "-l", "warning",
             "-s", str(self.work / "beat-schedule")],
            self.env,
        )  # fmt: skip
        for name in agent_names:
            self.start_agent(name)
        self.wait_reported([a["record"] for a in self.agents.values()])
        flow = create_processflow(
            organization, actor=owner, name="Agent faults", definition=forwarding_definition(),
            agent_group=group,
        )  # fmt: skip
        deployment = Deployment(
            organization=organization, processflow=flow, version=flow.versions.first(),
            registration_state=RegistrationState.ACTIVE, agent_group=group,
        )  # fmt: skip
        self.key = new_signing_key(deployment)
        deployment.save()
        self.flow = flow

    def start_portal(self) -> None:
        self.children.start(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "portal.wsgi:application",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--worker-class",
             "gthread", "--threads", "8", "--keep-alive", "30", "--log-level", "warning",
             "--graceful-timeout", "5"],
            self.env,
        )  # fmt: skip
        wait_until_serving(self.port, self.children.running["gunicorn"], timeout=120)

    def agent_env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            CONNECT_AGENT_DATA=str(self.work / f"agent-{name}"),
            CONNECT_AGENT_LOG_LEVEL="INFO", CONNECT_AGENT_HEARTBEAT_SECONDS="2",
            CONNECT_AGENT_ALLOWED_PRIVATE_HOSTS="127.0.0.1",
        )  # fmt: skip
        return env

    def register(self, name: str, issued) -> None:
        env = self.agent_env(name)
        subprocess.run(
            [sys.executable, "-m", "agent", "register", "--portal",
             f"http://127.0.0.1:{self.proxy.port}", "--key", issued.key],
            env=env, cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-c",
             CONFIGURE % {"token": _sandbox_token(), "dest": self.destination.url}],
            env=env, cwd=REPO, check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.agents[name] = {"record": issued.agent, "starts": 0}

    def start_agent(self, name: str) -> None:
        self.agents[name]["starts"] += 1
        self.children.start(
            f"agent-{name}",
            [sys.executable, "-m", "agent", "run", "--listen", f"127.0.0.1:{free_port()}",
             "--concurrency", str(self.args.concurrency)],
            self.agent_env(name),
        )  # fmt: skip

    def wait_reported(self, records) -> None:
        from portal.agents.models import Agent

        deadline = time.monotonic() + 180
        for record in records:
            while len(Agent.objects.unscoped("bench").get(pk=record.pk).applications or []) < 2:
                if time.monotonic() > deadline:
                    raise SystemExit(f"agent {record.name} never reported its connections")
                time.sleep(0.3)

    # --- Measuring ---------------------------------------------------------------------------

    def runs(self):
        from portal.processflows.models import Run

        return Run.objects.unscoped("the benchmark counts its runs").filter(processflow=self.flow)

    def succeeded(self) -> int:
        from portal.processflows.models import RunStatus

        return self.runs().filter(status=RunStatus.SUCCEEDED).count()

    def in_flight(self, agent_record=None) -> set[int]:
        from portal.processflows.models import RunStatus

        found = self.runs().filter(status=RunStatus.RUNNING)
        if agent_record is not None:
            found = found.filter(agent=agent_record)
        return set(found.values_list("pk", flat=True))

    def wait_succeeded(self, count: int) -> None:
        deadline = time.monotonic() + self.args.timeout
        while self.succeeded() < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {self.succeeded()} of {count} runs succeeded")
            time.sleep(0.2)

    def recovery(self, run_ids: set[int], since) -> float | None:
        """Seconds from ``since`` (a datetime) until the last of ``run_ids`` finished, read
        from the runs' own finish times once everything succeeded."""
        from django.db.models import Max

        if not run_ids:
            return 0.0
        last = self.runs().filter(pk__in=run_ids).aggregate(last=Max("finished_at"))["last"]
        return (last - since).total_seconds() if last else None

    def send(self, count: int) -> threading.Thread:
        path = f"/hooks/{self.flow.hook_id}/"
        deliveries = signed_deliveries(count, path, self.key, self.port, "f")
        self.sent: dict = {}
        thread = threading.Thread(
            target=lambda: self.sent.update(load(self.port, deliveries, 8)), daemon=True
        )
        thread.start()
        return thread

    def figures(self) -> dict:
        from django.db.models import Count

        from portal.processflows.models import RunStatus, TriggerEvent

        events = TriggerEvent.objects.unscoped("bench").filter(deployment__processflow=self.flow)
        runs = self.runs()
        per_event = runs.values("event_id").annotate(n=Count("pk"))
        ok_per_event = (
            runs.filter(status=RunStatus.SUCCEEDED).values("event_id").annotate(n=Count("pk"))
        )
        succeeded_events = {row["event_id"] for row in ok_per_event}
        keys, calls = self.destination.keys, self.destination.posts
        run_uids = {str(u) for u in runs.values_list("uid", flat=True)}
        forward_keys = {k for k in keys if k.split(":")[0] in run_uids}
        return {
            "accepted": events.count(),
            "runs": runs.count(),
            "succeeded": runs.filter(status=RunStatus.SUCCEEDED).count(),
            "lost": events.exclude(pk__in=succeeded_events).count(),
            "events_with_two_runs": sum(1 for row in per_event if row["n"] > 1),
            "events_with_two_succeeded": sum(1 for row in ok_per_event if row["n"] > 1),
            "destination_calls": calls,
            "destination_keys": len(keys),
            "sent_again_same_key": calls - len(keys),
            "keys_not_of_a_run": len(set(keys) - forward_keys),
            "runs_without_a_call": len(run_uids - {k.split(":")[0] for k in forward_keys}),
            "attempts_above_one": runs.filter(attempt__gt=1).count(),
        }

    def close(self) -> None:
        self.children.stop_all()
        self.proxy.cut()
        self.destination.shutdown()
        self.destination.server_close()
        self.sandbox.stop()
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()


def _sandbox_token() -> str:
    from connectors.calendly.sandbox import seed

    return seed.OWNER_TOKEN


def now():
    from django.utils import timezone

    return timezone.now()


def _wait_fraction(bench: Bench, target: int) -> None:
    deadline = time.monotonic() + bench.args.timeout
    while bench.succeeded() < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"stuck below {target} succeeded runs ({bench.succeeded()})")
        time.sleep(0.05)


def scenario_kill(bench: Bench) -> dict:
    """SIGKILL the agent at a third and at two thirds of the runs, started again at once."""
    events = bench.args.events
    bench.prepare(["a"])
    sender = bench.send(events)
    recoveries, in_flight = [], []
    for fraction in (1 / 3, 2 / 3):
        _wait_fraction(bench, int(events * fraction))
        held = bench.in_flight()
        bench.children.kill("agent-a")
        killed = now()
        bench.start_agent("a")
        in_flight.append(len(held))
        recoveries.append((held, killed))
    sender.join()
    bench.wait_succeeded(bench.sent.get("accepted", events))
    times = [bench.recovery(held, killed) for held, killed in recoveries]
    return {"in_flight_at_kill": in_flight, "recovery_s": times, "agent_starts": 3}


def scenario_cut(bench: Bench) -> dict:
    """Cut agent <-> portal for ``--cut`` seconds and restart the portal meanwhile."""
    events = bench.args.events
    bench.prepare(["a"])
    sender = bench.send(events)
    _wait_fraction(bench, events // 3)
    sender.join()  # intake is the portal: every delivery accepted before it restarts
    bench.proxy.cut()
    cut_at = time.monotonic()
    held = bench.in_flight()
    time.sleep(min(5.0, bench.args.cut / 3))
    bench.children.stop("gunicorn")
    bench.start_portal()
    time.sleep(max(0.0, bench.args.cut - (time.monotonic() - cut_at)))
    bench.proxy.restore()
    restored, restored_at = time.monotonic(), now()
    cut_seconds = restored - cut_at
    first_progress = None
    before = bench.succeeded()
    while first_progress is None and time.monotonic() - restored < bench.args.timeout:
        if bench.succeeded() > before:
            first_progress = time.monotonic() - restored
        time.sleep(0.05)
    bench.wait_succeeded(bench.sent.get("accepted", events))
    drained = time.monotonic() - restored
    recovery = bench.recovery(held, restored_at)
    return {
        "cut_s": cut_seconds,
        "in_flight_at_cut": len(held),
        "succeeded_before_return": before,
        "first_success_after_return_s": first_progress,
        "recovery_s": [recovery],
        "drained_after_return_s": drained,
    }


def scenario_group(bench: Bench) -> dict:
    """Two agents in a group; the one holding the most runs is killed and stays dead."""
    events = bench.args.events
    bench.prepare(["a", "b"])
    sender = bench.send(events)
    _wait_fraction(bench, events // 3)
    held = {name: bench.in_flight(a["record"]) for name, a in bench.agents.items()}
    victim = max(held, key=lambda name: len(held[name]))
    bench.children.kill(f"agent-{victim}")
    killed = now()
    sender.join()
    bench.wait_succeeded(bench.sent.get("accepted", events))
    recovery = bench.recovery(held[victim], killed)
    survivor = next(name for name in bench.agents if name != victim)
    taken = bench.runs().filter(pk__in=held[victim], agent=bench.agents[survivor]["record"]).count()
    return {
        "in_flight_at_kill": [len(held[victim])],
        "taken_over_by_survivor": taken,
        "recovery_s": [recovery],
        "lease_bound_s": bench.args.lease,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--cut", type=float, default=60.0, help="seconds the network is cut")
    parser.add_argument("--lease", type=int, default=20, help="PORTAL_RUN_LEASE_SECONDS")
    parser.add_argument("--concurrency", type=int, default=4, help="run slots per agent")
    parser.add_argument("--delay", type=float, default=0.05, help="the destination's answer")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/portal_bench_agentfaults"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    create_database(args.database_url)
    bench = Bench(args)
    started = time.monotonic()
    try:
        report = {"scenario": args.scenario, "lease_s": args.lease, "stuck": ""}
        try:
            report.update(globals()[f"scenario_{args.scenario}"](bench))
        except SystemExit as stuck:  # the figures say what was lost or stuck
            report["stuck"] = str(stuck)
        report["seconds"] = time.monotonic() - started
        report.update(bench.figures())
        report["cpu_s"] = dict(bench.children.cpu_seconds)
        bench.children.stop_all()
        report["cpu_s"] = dict(bench.children.cpu_seconds)
        report["load_average"] = os.getloadavg()
    finally:
        bench.close()
        drop_database(args.database_url)
        redis.Redis.from_url(args.redis_url).flushdb()
        if args.keep_logs:
            print(f"logs in {bench.work}", file=sys.stderr)
        else:
            shutil.rmtree(bench.work, ignore_errors=True)
    _print(report, args)


def _print(report: dict, args) -> None:
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    print(f"scenario {report['scenario']}: lease {report['lease_s']} s, "
          f"{report['seconds']:.0f} s in all, load {report['load_average'][0]:.1f}")  # fmt: skip
    for key in ("accepted", "runs", "succeeded", "lost", "events_with_two_runs",
                "events_with_two_succeeded", "destination_calls", "destination_keys",
                "sent_again_same_key", "keys_not_of_a_run", "runs_without_a_call",
                "attempts_above_one"):  # fmt: skip
        print(f"  {key:28}{report[key]:>8}")
    for key, value in report.items():
        if (key.endswith("_s") and key not in ("lease_s", "cpu_s")) or key.startswith("in_flight"):
            print(f"  {key:28}{value}")
    for key in ("taken_over_by_survivor", "succeeded_before_return"):
        if key in report:
            print(f"  {key:28}{report[key]:>8}")
    if report["stuck"]:
        print(f"  STUCK: {report['stuck']}")
    agent_cpu = report["cpu_s"].get("agent", 0.0)
    print(f"  agent CPU {agent_cpu:.1f} s = {1000 * agent_cpu / max(1, report['runs']):.1f} ms "
          f"per run; worker CPU not counted (Celery children)")  # fmt: skip
    ok = report["lost"] == 0 and report["events_with_two_succeeded"] == 0
    ok = ok and report["succeeded"] == report["accepted"] and not report["stuck"]
    print("never lose: " + ("held" if ok else "BROKEN"))


if __name__ == "__main__":
    main()
