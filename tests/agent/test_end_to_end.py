"""The On-Premise agent with the real portal, all in real processes: the portal over HTTP
(pytest-django's live server), the outbox relay and a Celery worker, the agent program
(``connect-agent register`` then ``run``) and the Calendly sandbox.

Deploy a triggered flow to the agent's group -> the agent subscribes with its own
credential -> the sandbox fires invitee.created -> intake verifies it -> the agent runs the
steps with its local token -> the run succeeded, ran by that agent. The token (a canary)
never reaches the portal: not its database, not its processes' logs, not Redis.
"""

from __future__ import annotations

import subprocess

import pytest
from django.conf import settings as django_settings
from django.db import connection

from connectors.calendly.sandbox import seed
from portal.agents.models import Agent
from portal.processflows import services
from portal.processflows.models import Deployment, RegistrationState, Run, RunStatus, StepRun
from tests.agent.conftest import agent_cli, agent_env, agent_python
from tests.factories import every, make_agent, owner_of
from tests.processes import purge_queues, start_worker, wait_for
from tests.processflows.reliability.support import start_relay

pytestmark = pytest.mark.services

CANARY = seed.OWNER_TOKEN  # the sandbox knows it; nothing in the portal may ever hold it
STEPS = [
    {"name": "document", "type": "map", "mapping": {"email": "{{ trigger.payload.email }}"}},
    {"name": "me", "application": "calendly", "credential": "main", "action": "users/me"},
]


def definition() -> dict:
    return {
        "trigger": {
            "type": "webhook",
            "application": "calendly",
            "credential": "main",
            "events": ["invitee.created"],
            "options": {"scope": "organization"},
        },
        "steps": STEPS,
    }


@pytest.fixture
def portal(monkeypatch, transactional_db, live_server, calendly_sandbox, settings):
    """The portal at ``live_server.url`` with its relay and an intake worker."""
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = live_server.url
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    purge_queues()
    relay = start_relay()
    try:
        worker = start_worker(
            extra_env={
                "CALENDLY_API_BASE_URL": calendly_sandbox.url,
                "PORTAL_BASE_URL": live_server.url,
                "PORTAL_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            }
        )
        try:
            yield relay, worker
        finally:
            worker.stop()
    finally:
        relay.stop()


def _configure(data, sandbox_url: str) -> None:
    """What a person does in the agent's UI (the browser test walks it): tick Calendly in
    Settings and save the connection 'main' with the token."""
    result = agent_python(
        data,
        "from agent.local import store\n"
        "store.offer_applications([{'application': 'calendly', 'title': 'Calendly'}])\n"
        "store.set_enabled({'calendly'})\n"
        "c = store.save_connection(application='calendly', name='main', fields={}, "
        f"secrets={{'personal_access_token': {CANARY!r}}})\n"
        "print(store.validate_connection(c).message)\n",
        CALENDLY_API_BASE_URL=sandbox_url,
    )
    assert "Connected to Calendly" in result.stdout, result.stdout + result.stderr


@pytest.fixture
def agent(portal, live_server, acme, owner, agent_data, start_agent, calendly_sandbox):
    """Acme's agent "Plant A", registered with a one-time key and running."""
    issued = make_agent(acme, name="Plant A")
    registered = agent_cli(agent_data, "register", "--portal", live_server.url, "--key", issued.key)
    assert registered.returncode == 0, registered.stderr
    _configure(agent_data, calendly_sandbox.url)
    running = start_agent(
        env=agent_env(
            CALENDLY_API_BASE_URL=calendly_sandbox.url, CONNECT_AGENT_HEARTBEAT_SECONDS="1"
        )
    )
    wait_for(
        lambda: every(Agent).get(pk=issued.agent.pk).applications,
        message=f"the agent never reported its connection:\n{running.process.output()}",
    )
    running.record = every(Agent).get(pk=issued.agent.pk)
    return running


def _deploy(acme, group):
    flow = services.create_processflow(
        acme, actor=owner_of(acme), name="Bookings on premise", definition=definition(),
        agent_group=group,
    )  # fmt: skip
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)
    return flow, deployment


def test_the_agent_reports_its_connection_by_name_and_validity(agent):
    [reported] = agent.record.applications
    assert (reported["application"], reported["name"], reported["valid"]) == (
        "calendly",
        "main",
        True,
    )


def test_a_booking_runs_on_the_agent_with_its_local_token(agent, acme, calendly_sandbox, portal):
    relay, worker = portal
    flow, deployment = _deploy(acme, agent.record.group)
    wait_for(
        lambda: (
            every(Deployment).get(pk=deployment.pk).registration_state == RegistrationState.ACTIVE
        ),
        message=f"the agent did not subscribe:\n{agent.process.output()}",
    )
    [subscription] = calendly_sandbox.subscriptions
    assert subscription["callback_url"].endswith(f"/hooks/{flow.hook_id}/")

    calendly_sandbox.fire("invitee.created", email="grace@example.com")

    run = wait_for(
        lambda: every(Run).filter(processflow=flow, status=RunStatus.SUCCEEDED).first(),
        message=f"no run succeeded:\n{agent.process.output()}\n{worker.output()}",
    )
    assert run.agent_id == agent.record.pk
    steps = {s.name: s for s in StepRun.objects.filter(run=run)}
    assert steps["document"].output == {"email": "grace@example.com"}
    assert steps["me"].status == "succeeded"
    assert seed.OWNER_USER_UUID in repr(steps["me"].output)

    # The canary: nowhere in the portal's database, its processes' output, or Redis.
    assert CANARY not in _database_dump()
    assert CANARY not in relay.output() + worker.output()
    assert CANARY not in _redis_dump()


def _database_dump() -> str:
    db = connection.settings_dict
    return subprocess.run(
        ["pg_dump", "-h", db["HOST"] or "127.0.0.1", "-U", db["USER"] or "postgres",
         "--data-only", db["NAME"]],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip


def _redis_dump() -> str:
    import redis

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    found = []
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        if kind == b"string":
            found.append(repr(client.get(key)))
        elif kind == b"list":
            found.append(repr(client.lrange(key, 0, -1)))
        elif kind == b"hash":
            found.append(repr(client.hgetall(key)))
        elif kind in (b"set", b"zset"):
            found.append(
                repr(client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key))
            )
    return "\n".join(found)
