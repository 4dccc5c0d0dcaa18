"""Faults with real processes: an agent killed (SIGKILL) in the middle of a step loses its
lease, and the run is finished once, by its group's other agent or by itself started again."""

from __future__ import annotations

import pytest

from connectors.calendly.sandbox import seed
from portal.agents.models import Agent
from portal.processflows.models import Deployment, RegistrationState, Run, RunStatus, StepRun
from tests.agent.conftest import agent_cli, agent_env
from tests.agent.test_end_to_end import _configure, _deploy, portal  # noqa: F401
from tests.agent.test_end_to_end import agent as agent
from tests.factories import every, make_agent
from tests.processes import wait_for

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
