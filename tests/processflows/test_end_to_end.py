"""The whole path with real processes: the portal served over HTTP (pytest-django's live
server), the outbox relay and a Celery worker as processes, the broker and database of the
run (Redis and PostgreSQL in CI), the Calendly sandbox and a destination server.

Deploy a triggered flow -> the sandbox holds the subscription -> the sandbox fires
invitee.created -> the destination receives the mapped document once -> the run succeeded.
Undeploy -> the subscription is gone.
"""

from __future__ import annotations

import json

import pytest
import requests

from connectors.calendly.sandbox import seed
from portal.processflows import services
from portal.processflows.models import Deployment, RegistrationState, Run, RunStatus, TriggerEvent
from tests.factories import every, make_credential, make_processflow, owner_of
from tests.processes import purge_queues, start_worker, wait_for
from tests.processflows.reliability.support import booking_steps, rest_credential, start_relay

pytestmark = pytest.mark.services


@pytest.fixture
def portal(monkeypatch, transactional_db, live_server, calendly_sandbox, settings):
    """The portal at ``live_server.url`` with the outbox relay and a worker process, talking
    to the sandbox and allowed to reach loopback destinations."""
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
            yield worker
        finally:
            worker.stop()
    finally:
        relay.stop()


def registration(deployment: Deployment) -> str:
    return every(Deployment).get(pk=deployment.pk).registration_state


def test_a_deployed_flow_forwards_a_calendly_booking_once_and_undeploying_unsubscribes(
    portal, live_server, calendly_sandbox, destination, owner, acme
):
    sandbox = calendly_sandbox
    calendly = make_credential(acme)
    rest = rest_credential(acme, destination.url)
    flow = make_processflow(acme, calendly, steps=booking_steps(calendly, rest))

    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)

    wait_for(
        lambda: registration(deployment) == RegistrationState.ACTIVE,
        message=f"the subscription was not registered:\n{portal.output()}",
    )
    [subscription] = sandbox.subscriptions
    assert subscription["callback_url"] == f"{live_server.url}/hooks/{flow.hook_id}/"
    assert subscription["events"] == ["invitee.created"]
    assert subscription["scope"] == "organization"
    assert subscription["organization"] == f"{sandbox.url}/organizations/{seed.ORGANIZATION_UUID}"
    assert subscription["state"] == "active"

    sandbox.fire("invitee.created", email="grace@example.com")

    run = wait_for(
        lambda: every(Run).filter(processflow=flow, status=RunStatus.SUCCEEDED).first(),
        message=f"no run succeeded:\n{portal.output()}",
    )
    [sent] = sandbox.wait_for_deliveries()
    assert [status for status, _ in sent.attempts] == [202]
    event = every(TriggerEvent).get(deployment=deployment)
    scheduled = sandbox_event(sandbox, event)
    assert destination.documents == [{"email": "grace@example.com", "title": scheduled["name"]}]
    assert destination.received[0]["headers"]["Idempotency-Key"] == f"{run.uid}:forward"
    assert run.event == event
    assert every(Run).filter(processflow=flow).count() == 1

    services.undeploy(acme, actor=owner_of(acme), processflow_id=flow.pk)

    wait_for(
        lambda: registration(deployment) == RegistrationState.REMOVED,
        message=f"the subscription was not removed:\n{portal.output()}",
    )
    assert sandbox.subscriptions == []


def sandbox_event(sandbox, event: TriggerEvent) -> dict:
    """The scheduled event the delivery was about, as the sandbox's API serves it."""
    uri = json.loads(bytes(event.body))["payload"]["event"]
    answer = requests.get(uri, headers={"Authorization": f"Bearer {seed.OWNER_TOKEN}"}, timeout=5)
    return answer.json()["resource"]
