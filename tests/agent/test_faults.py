"""Faults with real processes: an agent killed (SIGKILL) in the middle of a step loses its
lease, and the run is finished once, by its group's other agent or by itself started again.

Then "never lose, never leak" over a burst of events (issue 11; ``benchmarks/agent_faults.py``
runs the same at full scale and prints the figures): the portal served by gunicorn and
reached by the agents through a TCP proxy, its relay and a Celery worker, agents whose flow
forwards each booking to a destination that honours ``Idempotency-Key``. Killed agents,
a cut network and a restarted portal: every accepted event ends in exactly one succeeded
run, and the destination applies each run's forward once.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import pytest

from connectors.calendly.sandbox import seed
from portal.agents.models import Agent
from portal.processflows import services
from portal.processflows.models import (
    Deployment,
    RegistrationState,
    Run,
    RunStatus,
    StepRun,
    TriggerEvent,
)
from portal.processflows.signing import new_signing_key
from tests.agent.conftest import agent_cli, agent_env, agent_python
from tests.agent.forwarding import forwarding_definition
from tests.agent.test_end_to_end import _configure, _deploy, portal  # noqa: F401
from tests.agent.test_end_to_end import agent as agent
from tests.factories import every, make_agent, owner_of
from tests.netproxy import TcpProxy
from tests.processes import (
    answers_http,
    child_env,
    purge_queues,
    start,
    start_worker,
    wait_for,
)
from tests.processflows.reliability.support import (
    Hook,
    delivery,
    free_port,
    scripted_destination,
    start_relay,
)

pytestmark = pytest.mark.services

LEASE_SECONDS = 10
# Shorter than a lease: whichever agent's call meets the stall, its lease outlives it.
STALL_SECONDS = 5


@pytest.fixture
def short_leases(settings):
    """Leases short enough for a test to wait one out (the live portal runs in-process)."""
    settings.PORTAL_RUN_LEASE_SECONDS = LEASE_SECONDS


def _second_agent(acme, group, live_server, tmp_path, start_agent, sandbox_url: str):
    issued = make_agent(acme, name="Plant B", group=group)
    data = tmp_path / "plant-b"
    registered = agent_cli(data, "register", "--portal", live_server.url, "--key", issued.key)
    assert registered.returncode == 0, registered.stderr
    _configure(data, sandbox_url)
    running = start_agent(
        data=data,
        env=agent_env(CALENDLY_API_BASE_URL=sandbox_url, CONNECT_AGENT_HEARTBEAT_SECONDS="1"),
    )
    running.record = issued.agent
    wait_for(lambda: every(Agent).get(pk=issued.agent.pk).applications)
    return running


def _start_a_run_that_hangs_in_its_action(acme, group, calendly_sandbox):
    """Deploy, then fire a booking whose Calendly call stalls: returns the flow and the run
    once its 'me' step is reported running."""
    flow, deployment = _deploy(acme, group)
    wait_for(
        lambda: (
            every(Deployment).get(pk=deployment.pk).registration_state == RegistrationState.ACTIVE
        ),
        message="the agents did not subscribe",
    )
    calendly_sandbox.inject_fault("/users/me", "stall", seconds=STALL_SECONDS)
    calendly_sandbox.fire("invitee.created", email="grace@example.com")
    step = wait_for(
        lambda: StepRun.objects.filter(run__processflow=flow, name="me", status="running").first(),
        message="the run's action never started",
    )
    return flow, every(Run).get(pk=step.run_id)


def test_a_killed_agents_run_is_finished_by_the_other_agent_of_its_group(
    short_leases, agent, acme, live_server, tmp_path, start_agent, calendly_sandbox
):
    other = _second_agent(
        acme, agent.record.group, live_server, tmp_path, start_agent, calendly_sandbox.url
    )
    flow, run = _start_a_run_that_hangs_in_its_action(acme, agent.record.group, calendly_sandbox)
    holder, survivor = (agent, other) if run.agent_id == agent.record.pk else (other, agent)
    holder.process.kill()

    done = wait_for(
        lambda: every(Run).filter(pk=run.pk, status=RunStatus.SUCCEEDED).first(),
        timeout=LEASE_SECONDS * 20,
        message=f"the run was not taken over:\n{survivor.process.output()}",
    )
    assert done.agent_id == survivor.record.pk
    # At least two attempts: the killed agent's own long-poll, still held by the portal, may
    # lease the run once more to nobody before the survivor gets it.
    assert done.attempt >= 2
    assert every(Run).filter(processflow=flow).count() == 1
    me = StepRun.objects.get(run=done, name="me")
    assert me.status == "succeeded"
    assert seed.OWNER_USER_UUID in repr(me.output)


def test_an_agent_killed_mid_run_finishes_the_run_once_started_again(
    short_leases, agent, acme, start_agent, calendly_sandbox
):
    flow, run = _start_a_run_that_hangs_in_its_action(acme, agent.record.group, calendly_sandbox)
    agent.process.kill()
    again = start_agent(
        data=agent.data,
        env=agent_env(
            CALENDLY_API_BASE_URL=calendly_sandbox.url, CONNECT_AGENT_HEARTBEAT_SECONDS="1"
        ),
    )

    done = wait_for(
        lambda: every(Run).filter(pk=run.pk, status=RunStatus.SUCCEEDED).first(),
        timeout=LEASE_SECONDS * 20,
        message=f"the run was not finished:\n{again.process.output()}",
    )
    assert done.attempt >= 2
    assert every(Run).filter(processflow=flow).count() == 1
    assert StepRun.objects.get(run=done, name="me").status == "succeeded"


# --- Never lose, never leak, over a burst -------------------------------------------------------

EVENTS = 60
# Leases and the agents' heartbeats short enough for a test to wait a few out.
BURST_LEASE_SECONDS = "8"
# Longer than a lease: what the agent finishes while cut off is then stale, its runs leased
# again (to it) when the network is back.
CUT_SECONDS = 10
# Each forward takes a moment, so that a fault always finds runs in the middle of a step.
FORWARD_DELAY = 0.05
WAIT = 600  # only bounds how long a broken recovery takes to be reported


def start_threaded_web(**extra_env: str):
    """The portal in gunicorn with threads, as it is served: the agents' long-polls hold a
    thread each, so one sync worker would queue every lease renewal behind them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}",
        "--workers", "2", "--worker-class", "gthread", "--threads", "8",
        "--timeout", "120", "--graceful-timeout", "5",
    ]  # fmt: skip
    process = start(
        "gunicorn", args, env=child_env(**extra_env), ready=answers_http(f"{url}/hooks/ready/"),
        what="answer HTTP",
    )  # fmt: skip
    return process, url


class Burst:
    """The portal in gunicorn behind a proxy the agents go through, its relay and worker,
    the destination, and the agents started with ``agent(name)``."""

    def __init__(self, stack, acme, tmp_path, start_agent, sandbox_url, destination):
        self.acme, self.tmp_path, self._start_agent = acme, tmp_path, start_agent
        self.sandbox_url, self.destination = sandbox_url, destination
        self.web_env = {"PORTAL_RUN_LEASE_SECONDS": BURST_LEASE_SECONDS,
                        "PORTAL_ALLOWED_PRIVATE_HOSTS": "127.0.0.1"}  # fmt: skip
        self.web, self.url = start_threaded_web(**self.web_env)
        stack.callback(lambda: self.web.stop())
        port = int(self.url.rsplit(":", 1)[1])
        self.proxy = stack.enter_context(TcpProxy(("127.0.0.1", port)))
        relay = start_relay()
        stack.callback(relay.stop)
        worker = start_worker(extra_env=self.web_env)
        stack.callback(worker.stop)
        self.group = None
        self.agents: dict[str, object] = {}

    def add_agent(self, name: str):
        """Register an agent of the group (the first makes it) through the proxy, save its
        connections 'main' (Calendly) and 'dest' (REST), start it."""
        issued = make_agent(self.acme, name=f"Plant {name}", group=self.group)
        self.group = issued.agent.group
        data = self.tmp_path / f"plant-{name}"
        portal_url = f"http://127.0.0.1:{self.proxy.port}"
        registered = agent_cli(data, "register", "--portal", portal_url, "--key", issued.key)
        assert registered.returncode == 0, registered.stderr
        _configure(data, self.sandbox_url)
        saved = agent_python(
            data,
            "from agent.local import store\n"
            "store.offer_applications([{'application': 'calendly', 'title': 'Calendly'},"
            " {'application': 'rest', 'title': 'REST'}])\n"
            "store.set_enabled({'calendly', 'rest'})\n"
            "d = store.save_connection(application='rest', name='dest', fields={'base_url': "
            f"{self.destination.url!r}, 'auth_type': 'bearer'}}, "
            "secrets={'token': 'dest-token-0123456789abcdef'})\n"
            "print(store.validate_connection(d).ok)\n",
        )
        assert "True" in saved.stdout, saved.stdout + saved.stderr
        self.agents[name] = {"record": issued.agent, "data": data}
        self.start(name)
        wait_for(
            lambda: len(every(Agent).get(pk=issued.agent.pk).applications or []) >= 2,
            timeout=WAIT,
            message=f"agent {name} never reported its connections",
        )

    def start(self, name: str):
        running = self._start_agent(
            data=self.agents[name]["data"],
            env=agent_env(CALENDLY_API_BASE_URL=self.sandbox_url,
                          CONNECT_AGENT_HEARTBEAT_SECONDS="1"),
        )  # fmt: skip
        self.agents[name]["running"] = running
        return running

    def deploy(self) -> Hook:
        flow = services.create_processflow(
            self.acme, actor=owner_of(self.acme), name="Bookings forwarded on premise",
            definition=forwarding_definition(), agent_group=self.group,
        )  # fmt: skip
        deployment = Deployment(
            organization=self.acme, processflow=flow, version=flow.versions.first(),
            registration_state=RegistrationState.ACTIVE, agent_group=self.group,
        )  # fmt: skip
        key = new_signing_key(deployment)
        deployment.save()
        self.hook = Hook(flow, deployment, key)
        return self.hook

    def send(self, count: int) -> None:
        """``count`` distinct bookings delivered to intake (not through the proxy)."""
        for n in range(count):
            body = delivery(email=f"guest{n}@example.com")
            answer = self.hook.send(self.url, body)
            assert answer.status_code in (200, 202), answer.text

    def runs(self):
        return every(Run).filter(processflow=self.hook.flow)

    def succeeded(self) -> int:
        return self.runs().filter(status=RunStatus.SUCCEEDED).count()

    def wait_succeeded(self, count: int, what: str = "") -> None:
        wait_for(
            lambda: self.succeeded() >= count,
            timeout=WAIT,
            message=f"{self.succeeded()} of {count} runs succeeded {what}:\n{self.logs()}",
        )

    def in_flight(self, agent=None) -> set[int]:
        found = self.runs().filter(status=RunStatus.RUNNING)
        if agent is not None:
            found = found.filter(agent=agent)
        return set(found.values_list("pk", flat=True))

    def logs(self) -> str:
        return "\n".join(
            a["running"].process.output()[-3000:] for a in self.agents.values() if "running" in a
        )


@pytest.fixture
def burst(transactional_db, acme, owner, tmp_path, start_agent, calendly_sandbox, monkeypatch):
    from contextlib import ExitStack

    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    purge_queues()
    with ExitStack() as stack:
        destination = stack.enter_context(scripted_destination(201, delay=FORWARD_DELAY))
        yield Burst(stack, acme, tmp_path, start_agent, calendly_sandbox.url, destination)


def assert_each_event_once(burst: Burst, events: int) -> None:
    """Every accepted event has exactly one run, succeeded; the destination received one
    call key per run (its forward step's) and applied each once."""
    accepted = every(TriggerEvent).filter(deployment=burst.hook.deployment)
    assert accepted.count() == events
    runs = burst.runs()
    per_event = Counter(runs.values_list("event_id", flat=True))
    assert set(per_event) == set(accepted.values_list("pk", flat=True))  # none lost
    assert max(per_event.values()) == 1  # none run twice
    assert set(runs.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}
    forwards = StepRun.objects.filter(run__in=runs, name="forward")
    assert sorted(forwards.values_list("status", flat=True)) == ["succeeded"] * events
    expected_keys = {f"{uid}:forward" for uid in runs.values_list("uid", flat=True)}
    assert {r["key"] for r in burst.destination.requests} == expected_keys
    applied = Counter(r["key"] for r in burst.destination.received)
    assert set(applied) == expected_keys
    assert max(applied.values()) == 1


def test_an_agent_killed_twice_mid_burst_loses_no_event_and_applies_no_step_twice(burst):
    burst.add_agent("A")
    burst.deploy()
    burst.send(EVENTS)
    restarts = []
    for share in (EVENTS // 3, 2 * EVENTS // 3):
        burst.wait_succeeded(share, "before the kill")
        restarts.append(burst.in_flight())
        burst.agents["A"]["running"].process.kill()
        burst.start("A")

    burst.wait_succeeded(EVENTS, "after two kills")
    assert_each_event_once(burst, EVENTS)
    assert any(restarts), "no kill found a run in flight"


def test_a_cut_network_and_a_restarted_portal_lose_nothing_and_deliver_results_once(burst):
    burst.add_agent("A")
    burst.deploy()
    burst.send(EVENTS)
    burst.wait_succeeded(EVENTS // 3, "before the cut")

    burst.proxy.cut()
    burst.web.stop()
    # The agent meanwhile finishes what it holds and keeps the results in its outbox; the
    # cut outlasts a lease, so the portal may hand those runs out again when it is back.
    burst.web, burst.url = start_threaded_web(**burst.web_env)
    burst.proxy.target = ("127.0.0.1", int(burst.url.rsplit(":", 1)[1]))
    time.sleep(CUT_SECONDS)  # the cut lasts at least this long (no assertion on time)
    burst.proxy.restore()

    burst.wait_succeeded(EVENTS, "after the network came back")
    assert_each_event_once(burst, EVENTS)
    # Every result the agent kept while cut off was delivered (or dropped as stale): its
    # outbox drains.
    wait_for(
        lambda: _outbox_size(burst.agents["A"]["data"]) == "0",
        timeout=WAIT,
        message=f"reports left in the agent's outbox:\n{burst.logs()}",
    )


def _outbox_size(data) -> str:
    counted = agent_python(
        data, "from agent.local.models import OutboxItem\nprint(OutboxItem.objects.count())\n"
    )
    return counted.stdout.strip()


def test_a_group_finishes_a_burst_when_one_of_its_two_agents_is_killed(burst):
    burst.add_agent("A")
    burst.add_agent("B")
    burst.deploy()
    burst.send(EVENTS)
    burst.wait_succeeded(EVENTS // 3, "before the kill")
    victim = max(burst.agents, key=lambda name: len(burst.in_flight(burst.agents[name]["record"])))
    survivor = next(name for name in burst.agents if name != victim)
    killed = burst.agents[victim]["running"].process
    killed.kill()
    killed.popen.wait()
    # Runs nobody had started when the agent died: only the other can have finished them.
    # (What the dead agent held is finished once too, by whichever report got through:
    # one it sent just before its death may still be processed after it.)
    waiting = set(burst.runs().filter(status=RunStatus.QUEUED).values_list("pk", flat=True))

    burst.wait_succeeded(EVENTS, f"after agent {victim} was killed")
    assert_each_event_once(burst, EVENTS)
    finished_by = set(burst.runs().filter(pk__in=waiting).values_list("agent_id", flat=True))
    assert finished_by <= {burst.agents[survivor]["record"].pk}
