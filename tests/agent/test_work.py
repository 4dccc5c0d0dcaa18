"""The work loop against the agent protocol: run jobs leased to the agent go through the flow
engine with the local credential; step records and the finish reach the portal in order,
once, as one report when the run is quick, even across a network cut; a lease taken over
stops the agent writing."""

from __future__ import annotations

import re

import pytest

from connectors.calendly.sandbox import seed
from tests.agent.conftest import agent_cli, agent_env, agent_python
from tests.agent.protocol import KEY
from tests.netproxy import TcpProxy

ME_STEP = {"name": "me", "application": "calendly", "credential": "main", "action": "users/me"}
DEFINITION = {
    "trigger": {"type": "webhook", "application": "calendly", "events": ["invitee.created"]},
    "steps": [
        {"name": "document", "type": "map", "mapping": {"email": "{{ trigger.payload.email }}"}},
        ME_STEP,
    ],
}
TRIGGER = {"event": "invitee.created", "payload": {"email": "ada@example.com"}}


def _save_main_connection(data) -> None:
    result = agent_python(
        data,
        "from agent.local import store\n"
        "store.offer_applications([{'application': 'calendly', 'title': 'Calendly'}])\n"
        "store.set_enabled({'calendly'})\n"
        "store.save_connection(application='calendly', name='main', fields={}, "
        f"secrets={{'personal_access_token': {seed.OWNER_TOKEN!r}}})\n",
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def working_agent(agent_data, start_agent, protocol_portal, calendly_sandbox):
    """A registered agent with a Calendly connection named 'main', running."""

    def start(portal_url: str | None = None):
        agent_cli(agent_data, "register", "--portal", portal_url or protocol_portal.url,
                  "--key", KEY)  # fmt: skip
        _save_main_connection(agent_data)
        return start_agent(
            env=agent_env(
                CALENDLY_API_BASE_URL=calendly_sandbox.url, CONNECT_AGENT_HEARTBEAT_SECONDS="1"
            )
        )

    return start


def test_a_run_job_runs_its_steps_with_the_local_credential(working_agent, protocol_portal):
    working_agent()
    protocol_portal.queue_run(1, DEFINITION, TRIGGER)
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    finish = protocol_portal.finished[1]
    assert finish["status"] == "succeeded", finish
    assert seed.OWNER_USER_UUID in repr(finish["output"])


def test_step_records_arrive_in_order(working_agent, protocol_portal):
    working_agent()
    protocol_portal.queue_run(1, DEFINITION, TRIGGER)
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    assert [(r["position"], r["status"]) for r in protocol_portal.steps[1]] == [
        (0, "succeeded"),
        (1, "running"),
        (1, "succeeded"),
    ]


def test_a_runs_step_records_go_with_its_finish_in_one_report(working_agent, protocol_portal):
    working_agent()
    protocol_portal.queue_run(1, DEFINITION, TRIGGER)
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    *earlier, last = protocol_portal.reports[1]
    # Only a run going on for seconds has records sent before it ends.
    assert not any("finish" in report for report in earlier)
    assert last["finish"]["status"] == "succeeded"
    assert last["steps"][-1]["status"] == "succeeded"


def test_step_records_never_hold_the_token(working_agent, protocol_portal):
    working_agent()
    protocol_portal.queue_run(1, DEFINITION, TRIGGER)
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    assert seed.OWNER_TOKEN not in repr(protocol_portal.requests)


def test_a_step_naming_a_missing_connection_fails_the_run_for_good(working_agent, protocol_portal):
    working_agent()
    missing = {**ME_STEP, "credential": "nope"}
    protocol_portal.queue_run(1, {**DEFINITION, "steps": [missing]}, TRIGGER)
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    finish = protocol_portal.finished[1]
    assert finish["status"] == "failed"
    assert finish["retryable"] is False
    assert "This agent has no calendly connection named 'nope'" in finish["error"]


def test_a_connection_of_an_application_disabled_in_settings_is_not_used(
    working_agent, protocol_portal, agent_data
):
    working_agent()
    agent_python(agent_data, "from agent.local import store\nstore.set_enabled(set())\n")
    protocol_portal.queue_run(1, DEFINITION, TRIGGER)
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    finish = protocol_portal.finished[1]
    assert finish["status"] == "failed"
    assert "enable the application in the agent's Settings panel" in finish["error"]


def test_an_earlier_attempts_succeeded_action_is_not_sent_again(
    working_agent, protocol_portal, calendly_sandbox
):
    working_agent()
    done = {"position": 1, "name": "me", "status": "succeeded", "attempts": 1,
            "output": {"resource": {"email": "earlier@example.com"}}}  # fmt: skip
    protocol_portal.queue_run(1, DEFINITION, TRIGGER, previous=[done])
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    assert protocol_portal.finished[1]["output"] == {"resource": {"email": "earlier@example.com"}}
    assert not [e for e in calendly_sandbox.exchanges if e.path.endswith("/users/me")]


def test_a_run_whose_lease_was_taken_over_reports_nothing_more(working_agent, protocol_portal):
    agent = working_agent()
    protocol_portal.queue_run(1, DEFINITION, TRIGGER, stale=True)
    protocol_portal.queue_run(2, DEFINITION, TRIGGER)  # runs after the first was dropped
    protocol_portal.wait(lambda: 2 in protocol_portal.finished)
    assert 1 not in protocol_portal.finished
    assert 1 not in protocol_portal.steps
    status = agent_cli(agent.data, "status").stdout
    assert "Reports waiting for the portal: 0" in status


def test_a_run_leased_again_after_its_lease_was_lost_runs_and_reports(
    working_agent, protocol_portal
):
    # A lease that expired while the portal was unreachable: the portal leases the run
    # again, to this same agent. The lost lease must not make the new one lost too (the
    # run was then dropped at every attempt until it failed).
    agent = working_agent()
    # The map step alone: that attempt is over before its reports meet the lost lease.
    map_only = {**DEFINITION, "steps": DEFINITION["steps"][:1]}
    protocol_portal.queue_run(1, map_only, TRIGGER, stale=True)
    agent.process.wait_ready(
        lambda: "run 1: the lease is no longer ours" in agent.process.output(),
        what="drop the run whose lease was taken over",
    )
    protocol_portal.queue_run(1, DEFINITION, TRIGGER)
    protocol_portal.wait(lambda: 1 in protocol_portal.finished)
    assert protocol_portal.finished[1]["status"] == "succeeded"


def _waiting(agent) -> int:
    status = agent_cli(agent.data, "status").stdout
    return int(re.search(r"Reports waiting for the portal: (\d+)", status).group(1))


def test_reports_made_while_the_portal_is_unreachable_arrive_once_it_is_back(
    working_agent, protocol_portal, calendly_sandbox
):
    with TcpProxy(("127.0.0.1", protocol_portal.port)) as proxy:
        agent = working_agent(f"http://127.0.0.1:{proxy.port}")
        calendly_sandbox.inject_fault("/users/me", "stall", seconds=10)
        protocol_portal.queue_run(1, DEFINITION, TRIGGER)
        protocol_portal.wait(lambda: len(protocol_portal.steps.get(1, [])) == 2)  # running
        proxy.cut()
        # The action ends while the portal is away: its record and the finish wait on disk
        # (with the running record, if the cut took its answer away).
        agent.process.wait_ready(
            lambda: _waiting(agent) >= 2,
            what="keep its reports while the portal was unreachable",
        )
        assert 1 not in protocol_portal.finished
        proxy.restore()
        protocol_portal.wait(lambda: 1 in protocol_portal.finished)
        agent.process.wait_ready(lambda: _waiting(agent) == 0, what="empty its outbox")
    last = {r["position"]: r["status"] for r in protocol_portal.steps[1]}
    assert last == {0: "succeeded", 1: "succeeded"}
    assert protocol_portal.finished[1]["status"] == "succeeded"


def test_a_revoked_agent_stops_asking_for_work(working_agent, protocol_portal):
    agent = working_agent()
    protocol_portal.revoked = True
    agent.process.wait_ready(
        lambda: "Last problem: Revoked by the portal." in agent_cli(agent.data, "status").stdout,
        what="notice it was revoked",
    )
    assert "Revoked by the portal." in agent_cli(agent.data, "status").stdout


def test_a_subscribe_job_subscribes_with_the_local_credential(
    working_agent, protocol_portal, calendly_sandbox
):
    working_agent()
    protocol_portal.queue_job(
        {
            "kind": "subscribe",
            "id": "subscribe:5:1",
            "deployment": 5,
            "application": "calendly",
            "credential": "main",
            "url": "https://portal.example/hooks/abc",
            "events": ["invitee.created"],
            "options": {"scope": "organization"},
            "signing_key": "portal-made-signing-key-0123456789",
        }
    )
    protocol_portal.wait(lambda: "subscribe:5:1" in protocol_portal.results)
    result = protocol_portal.results["subscribe:5:1"]
    assert result["ok"] is True, result
    assert result["subscription"].startswith(calendly_sandbox.url)
