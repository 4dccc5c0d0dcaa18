"""The whole conversation over real HTTP against the live server, as the agent program has
it: register with the one-time key, heartbeat, long-poll; an accepted event's run reaches
the waiting poll at once; the agent reports its step and finishes; the run has succeeded."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from django.db import connection

from portal.processflows import runs, services
from portal.processflows.models import Outbox, Run, RunStatus, StepRun
from tests.agents.conftest import MAIN, agent_definition
from tests.factories import make_agent, make_event, owner_of


@pytest.fixture
def portal(transactional_db, live_server, owner, acme):
    return live_server.url + "/api/v1/agent/"


def test_an_agent_registers_waits_takes_a_run_reports_it_and_finishes_it(portal, acme, capsys):
    issued = make_agent(acme)
    session = requests.Session()
    registered = session.post(
        f"{portal}register",
        json={"key": issued.key, "name": "plant-a", "hostname": "plant-a.local", "version": "1"},
        timeout=60,
    )
    assert registered.status_code == 201
    session.headers["Authorization"] = f"Agent {registered.json()['secret']}"
    beat = session.post(
        f"{portal}heartbeat", json={"version": "1", "applications": MAIN}, timeout=60
    )
    assert beat.json() == {"applications": [], "poll_seconds": 25}

    flow = services.create_processflow(
        acme, actor=owner_of(acme), name="On premise", definition=agent_definition(),
        agent_group=issued.agent.group,
    )  # fmt: skip
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)
    session.get(f"{portal}jobs", params={"wait": 0}, timeout=60)  # the subscribe job
    event = make_event(deployment)
    Outbox.objects.create(event=event)

    answers: list = []

    def long_poll():
        answers.append(session.get(f"{portal}jobs", params={"wait": 25}, timeout=90))
        answers.append(time.monotonic())

    waiting = threading.Thread(target=long_poll)
    waiting.start()
    time.sleep(1.0)  # the poll is waiting by now (if not, it finds the run at once: same result)
    queued = time.monotonic()
    run = runs.start_run_for_event(acme.pk, event.pk)  # what the worker does with the event
    waiting.join(timeout=60)
    connection.close()
    (job,) = answers[0].json()["jobs"]
    print(f"pickup after queueing: {(answers[1] - queued) * 1000:.0f} ms")
    assert job["id"] == f"run:{run.pk}"

    lease = job["run"]["lease"]
    record = {"position": 0, "name": "document", "status": "succeeded", "attempts": 1,
              "output": {"email": "ada@example.com"}, "duration_ms": 1}  # fmt: skip
    finish = {"status": "succeeded", "output": {"email": "ada@example.com"}}
    reported = session.post(f"{portal}runs/{run.pk}/report", timeout=60,
                            json={"lease": lease, "steps": [record], "finish": finish})  # fmt: skip
    assert reported.status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.agent_id == issued.agent.pk
    assert StepRun.objects.get(run=run).output == {"email": "ada@example.com"}
    assert Run.objects.for_tenant(acme).count() == 1
