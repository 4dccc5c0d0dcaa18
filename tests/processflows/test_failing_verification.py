"""A webhook deployment whose recent deliveries all fail verification never looks healthy.

*Recent* is decided in one place (``selectors.delivery_verification``): within the last 24
hours, at least 3 deliveries rejected as unverified (401) and none accepted after them. The
flow page, its deployment panel, the processflow list and the API all show that state.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.processflows import registration, selectors, services
from portal.processflows.models import Deployment, RejectedDelivery, TriggerEvent
from portal.processflows.registration import processflow_url
from portal.vault import calls
from tests.factories import every, make_credential, make_processflow, owner_of, webhook_definition
from tests.processflows.reliability.support import Hook, delivery, deploy_hook

BASE = "/api/v1/organizations/acme"
WRONG_KEY = "a-key-this-deployment-does-not-know"
FAILING = "Failing verification: the last 3 deliveries were rejected"


@pytest.fixture
def hook(owner, acme) -> Hook:
    return deploy_hook(make_processflow(acme, make_credential(acme)))


def reject(client, hook: Hook, times: int = 3) -> None:
    """Deliveries signed with a key the deployment does not know, through intake."""
    for _ in range(times):
        assert hook.post(client, delivery(), key=WRONG_KEY).status_code == 401


def verification(hook: Hook) -> selectors.DeliveryVerification:
    organization = hook.deployment.processflow.organization
    return selectors.delivery_verification(organization, deployments=[hook.deployment])[
        hook.deployment.pk
    ]


# --- What "failing" means -----------------------------------------------------------------------


def test_three_unverified_deliveries_in_a_row_make_a_deployment_failing(client, hook):
    reject(client, hook, 2)
    assert not verification(hook).failing

    reject(client, hook, 1)

    state = verification(hook)
    assert state.failing
    assert state.rejected == 3
    assert state.last_reason == "the signature does not match the body"
    assert state.message == (
        "Failing verification: the last 3 deliveries were rejected (the signature does not "
        "match the body), and none was accepted since."
    )


def test_an_accepted_delivery_ends_the_failing_state(client, hook):
    reject(client, hook, 3)
    # Accepted after the rejections (stored by intake with the database's clock, which in a
    # test's transaction stands still; the time is what matters here).
    TriggerEvent.objects.create(
        organization_id=hook.deployment.organization_id,
        deployment=hook.deployment,
        source=TriggerEvent.Source.WEBHOOK,
        dedupe_key="accepted",
        body=delivery(),
    )

    assert not verification(hook).failing
    assert verification(hook).rejected == 0

    reject(client, hook, 3)
    assert verification(hook).failing


def test_rejections_older_than_24_hours_do_not_count(client, hook):
    reject(client, hook, 3)
    every(RejectedDelivery).filter(deployment=hook.deployment).update(
        received_at=timezone.now() - timedelta(hours=24, minutes=1)
    )

    assert not verification(hook).failing

    reject(client, hook, 2)
    assert verification(hook).rejected == 2
    assert not verification(hook).failing


def test_rejections_that_say_nothing_about_the_key_do_not_count(client, hook, settings):
    settings.PORTAL_WEBHOOK_MAX_BYTES = 10
    for _ in range(3):
        assert hook.post(client, delivery()).status_code == 413

    assert not verification(hook).failing


def test_a_polling_deployment_has_no_verification_state(acme, owner):
    credential = make_credential(acme)
    flow = make_processflow(
        acme,
        credential,
        name="Poll",
        definition={
            "trigger": {"type": "polling", "schedule": {"every_seconds": 300}},
            "steps": webhook_definition(credential)["steps"],
        },
    )
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)

    assert selectors.delivery_verification(acme, deployments=[deployment]) == {}


# --- Pages --------------------------------------------------------------------------------------


def test_the_flow_page_shows_failing_verification_instead_of_active(client, login, cast, hook):
    reject(client, hook, 3)
    as_member = login(cast["member"])

    html = as_member.get(f"/o/acme/processflows/{hook.flow.pk}/").content.decode()

    assert "Failing verification" in html
    assert FAILING in html
    assert '<span class="badge active">Active</span>' not in html


def test_the_deployment_panel_shows_failing_verification(client, login, cast, hook):
    reject(client, hook, 3)
    as_member = login(cast["member"])

    html = as_member.get(f"/o/acme/processflows/{hook.flow.pk}/state/").content.decode()

    assert 'id="failing-verification"' in html
    assert FAILING in html
    assert '<span class="badge active">Active</span>' not in html


def test_the_processflow_list_shows_failing_verification(client, login, cast, hook):
    as_member = login(cast["member"])
    html = as_member.get("/o/acme/processflows/").content.decode()
    assert '<span class="badge active">Active</span>' in html

    reject(client, hook, 3)
    html = as_member.get("/o/acme/processflows/").content.decode()

    assert "Failing verification" in html
    assert '<span class="badge active">Active</span>' not in html


def test_a_healthy_deployment_shows_no_failing_state(client, login, cast, hook):
    assert hook.post(client, delivery()).status_code == 202
    html = login(cast["member"]).get(f"/o/acme/processflows/{hook.flow.pk}/").content.decode()

    assert "Failing verification" not in html
    assert '<span class="badge active">Active</span>' in html


# --- API ----------------------------------------------------------------------------------------


def test_the_api_deployment_says_failing_verification(client, api, cast, acme, hook):
    member_api = api(cast["member"], acme)
    healthy = member_api.get(f"{BASE}/processflows/{hook.flow.pk}/deployment/").json()
    assert healthy["delivery_verification"]["state"] == "ok"
    assert healthy["delivery_verification"]["message"] == ""

    reject(client, hook, 3)

    for body in (
        member_api.get(f"{BASE}/processflows/{hook.flow.pk}/deployment/").json(),
        member_api.get(f"{BASE}/processflows/{hook.flow.pk}/").json()["deployment"],
        member_api.get(f"{BASE}/processflows/").json()["results"][0]["deployment"],
    ):
        state = body["delivery_verification"]
        assert state["state"] == "failing_verification"
        assert state["rejected"] == 3
        assert state["last_reason"] == "the signature does not match the body"
        assert state["message"].startswith(FAILING)
        assert state["first_rejected_at"]


def test_the_schema_describes_the_delivery_verification(api, cast, acme):
    schema = api(cast["member"], acme).get("/api/schema/?format=json").json()
    deployment = schema["components"]["schemas"]["Deployment"]["properties"]

    assert "delivery_verification" in deployment
    states = schema["components"]["schemas"]["DeliveryVerificationStateEnum"]["enum"]
    assert states == ["ok", "failing_verification"]


# --- Through the sandbox and the portal's intake ------------------------------------------------


@pytest.mark.services
def test_calendly_deliveries_signed_with_a_foreign_key_show_failing_verification(
    monkeypatch, transactional_db, live_server, calendly_sandbox, settings, api, cast, acme
):
    """The state the typed signing_key row used to leave: a subscription the child shows as
    Active, whose deliveries Calendly signs with a key the child does not know."""
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = live_server.url
    credential = make_credential(acme)
    definition = webhook_definition(credential)
    definition["trigger"]["registration"] = "manual"
    flow = make_processflow(acme, credential, definition=definition)
    target = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)
    made = calls.subscribe(
        credential,
        url=processflow_url(flow),
        events=["invitee.created"],
        options={"scope": "organization"},
        signing_key=WRONG_KEY,
    )
    assert made.ok, made.message
    registration.ManualSubscription(target, by="a test").subscribed(made.subscription)

    calendly_sandbox.fire("invitee.created")

    [sent] = calendly_sandbox.wait_for_deliveries()
    assert {status for status, _ in sent.attempts} == {401}  # Calendly retried, then gave up
    target = every(Deployment).get(pk=target.pk)
    assert target.registration_state == "active"
    body = api(cast["member"], acme).get(f"{BASE}/processflows/{flow.pk}/deployment/").json()
    assert body["delivery_verification"]["state"] == "failing_verification"
    assert body["delivery_verification"]["rejected"] == len(sent.attempts)
    assert "the signature does not match the body" in body["delivery_verification"]["message"]
