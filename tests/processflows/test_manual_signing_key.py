"""The seed's manual subscription: a *Create Webhook Subscription* step never takes a typed
``signing_key`` row. The portal hands the application the subscribed flow's own key (kept
encrypted); a typed key was sent to Calendly but never stored, so every delivery failed
verification while the flow showed *Active*. Such a row is refused when saved, the editor no
longer offers it, and a version saved before the refusal fails its step without subscribing."""

from __future__ import annotations

import pytest

from portal.processflows import execution, polling, runs, services
from portal.processflows.definitions import DefinitionError
from portal.processflows.models import (
    Deployment,
    Processflow,
    RegistrationState,
    RejectedDelivery,
    TriggerEvent,
)
from portal.processflows.registration import processflow_url
from portal.processflows.signing import signing_key
from tests.factories import every, make_credential, make_processflow, owner_of, webhook_definition

BASE = "/api/v1/organizations/acme"
TYPED_KEY = "my-own-signing-key-1234567890"
REFUSAL = "Remove the signing_key row: a signing key typed here would be stored and shown"


def subscribe_step(credential, url: str, *, typed_key: str | None = None) -> dict:
    """The seed's *Create Webhook Subscription* step for ``url``."""
    filters = [
        ["events[]", "invitee.created"],
        ["scope", "organization"],
        ["organization", "~{GetOrganizationUrl}~"],
        ["url", url],
    ]
    if typed_key is not None:
        filters.append(["signing_key", typed_key])
    return {
        "name": "subscribe",
        "type": "action",
        "application": "calendly",
        "credential": credential.pk,
        "action": "webhook_subscription",
        "filters": filters,
    }


def subscribing_definition(credential, url: str, **kw) -> dict:
    """A polling flow that runs once and subscribes ``url``, as the seed does it."""
    return {
        "trigger": {"type": "polling", "schedule": {"once": True}, "source": None},
        "steps": [subscribe_step(credential, url, **kw)],
    }


def manual_definition(credential) -> dict:
    definition = webhook_definition(credential)
    definition["trigger"]["registration"] = "manual"
    return definition


def run_once(deployment: Deployment):
    """What the scheduler and a worker do for one tick of a polling deployment."""
    assert polling.poll(deployment.organization_id, deployment.pk) == 1
    event = every(TriggerEvent).filter(deployment=deployment).latest("pk")
    run = runs.start_run_for_event(event.organization_id, event.pk)
    execution.execute(run.organization_id, run.pk)
    run.refresh_from_db()
    return run


@pytest.fixture
def credential(acme):
    return make_credential(acme)


# --- Refused when saved -----------------------------------------------------------------------


def test_saving_a_subscription_step_with_a_signing_key_row_is_refused_on_that_row(
    acme, owner, credential
):
    child = make_processflow(acme, credential, definition=manual_definition(credential))
    definition = subscribing_definition(credential, processflow_url(child), typed_key=TYPED_KEY)

    with pytest.raises(DefinitionError) as refused:
        make_processflow(acme, credential, name="Subscribe", definition=definition)

    errors = refused.value.message_dict
    assert list(errors) == ["steps[0].filters.signing_key"]
    assert errors["steps[0].filters.signing_key"][0].startswith(REFUSAL)
    assert "that processflow's own signing key" in errors["steps[0].filters.signing_key"][0]
    assert TYPED_KEY not in str(errors)
    assert not every(Processflow).filter(name="Subscribe").exists()


def test_the_api_refuses_a_signing_key_row_with_400_naming_the_row(api, acme, cast, credential):
    definition = subscribing_definition(
        credential, "https://example.com/hooks/x/", typed_key=TYPED_KEY
    )
    response = api(cast["member"], acme).post(
        f"{BASE}/processflows/", {"name": "Subscribe", "definition": definition}, format="json"
    )

    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["steps[0].filters.signing_key"]
    assert fields["steps[0].filters.signing_key"][0].startswith(REFUSAL)
    assert TYPED_KEY not in response.content.decode()


def designer_subscribe_step(credential, **extra) -> dict:
    return {
        "name": "Subscribe",
        "trigger_type": "polling",
        "schedule_kind": "once",
        "step-count": "1",
        "step-0-name": "subscribe",
        "step-0-type": "action",
        "step-0-application": "calendly",
        "step-0-action": "webhook_subscription",
        "step-0-credential": str(credential.pk),
        "step-0-f-events[]": ["invitee.created"],
        "step-0-f-scope": "organization",
        "step-0-f-url": "https://example.com/hooks/x/",
        **extra,
    }


def test_the_designer_shows_the_refusal_on_the_step(login, cast, credential):
    data = designer_subscribe_step(
        credential, op="save", **{"step-0-xkey": "signing_key", "step-0-xval": TYPED_KEY}
    )
    response = login(cast["member"]).post("/o/acme/processflows/new/", data)

    assert response.status_code == 400
    [error] = response.context["errors"]
    assert error["where"] == "step-0"
    assert error["message"].startswith(REFUSAL)
    assert not every(Processflow).exists()


def test_the_designer_does_not_offer_signing_key_for_create_webhook_subscription(
    login, cast, credential
):
    html = (
        login(cast["member"])
        .post("/o/acme/processflows/new/", designer_subscribe_step(credential, op="refresh"))
        .content.decode()
    )

    assert 'name="step-0-f-url"' in html
    assert 'name="step-0-f-events[]"' in html
    assert "step-0-f-signing_key" not in html


# --- A version saved before the refusal -------------------------------------------------------


def test_a_stored_step_with_a_signing_key_row_fails_without_subscribing(
    monkeypatch, calendly_sandbox, settings, destination, acme, owner, credential
):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = destination.url
    child = make_processflow(acme, credential, definition=manual_definition(credential))
    target = services.deploy(acme, actor=owner_of(acme), processflow_id=child.pk)
    subscriber = make_processflow(
        acme, credential, name="Subscribe", definition=subscribing_definition(
            credential, processflow_url(child)
        ),
    )  # fmt: skip
    # Saved before such rows were refused: the stored version holds the typed key.
    version = subscriber.versions.get()
    version.definition["steps"][0]["filters"].append(["signing_key", TYPED_KEY])
    version.save(update_fields=["definition"])

    run = run_once(services.deploy(acme, actor=owner_of(acme), processflow_id=subscriber.pk))

    assert run.status == "failed"
    assert REFUSAL in run.error
    assert "Edit this processflow, remove it and deploy again." in run.error
    assert calendly_sandbox.subscriptions == []
    target.refresh_from_db()
    assert target.registration_state == RegistrationState.MANUAL  # never shown as Active


# --- The whole way, through the sandbox and the portal's intake -------------------------------


@pytest.mark.services
def test_the_manual_way_delivers_to_the_portal_once_the_typed_key_is_refused(
    monkeypatch, transactional_db, live_server, calendly_sandbox, settings, acme, owner, credential
):
    """The seed's walk: a child flow deployed for manual registration, a subscribing flow
    typed with a signing_key row (refused), saved without it and run; Calendly's delivery
    then reaches the portal's Processflow URL and is accepted."""
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = live_server.url
    child = make_processflow(acme, credential, definition=manual_definition(credential))
    target = services.deploy(acme, actor=owner_of(acme), processflow_id=child.pk)
    url = processflow_url(child)
    assert url.startswith(live_server.url)

    with pytest.raises(DefinitionError, match="Remove the signing_key row"):
        make_processflow(
            acme, credential, name="Subscribe",
            definition=subscribing_definition(credential, url, typed_key=TYPED_KEY),
        )  # fmt: skip
    subscriber = make_processflow(
        acme, credential, name="Subscribe", definition=subscribing_definition(credential, url)
    )
    run = run_once(services.deploy(acme, actor=owner_of(acme), processflow_id=subscriber.pk))
    assert run.status == "succeeded", run.error
    target.refresh_from_db()
    assert target.registration_state == RegistrationState.ACTIVE

    calendly_sandbox.fire("invitee.created", email="grace@example.com")

    [delivery] = calendly_sandbox.wait_for_deliveries()
    assert delivery.url == url
    assert [status for status, _ in delivery.attempts] == [202]
    event = every(TriggerEvent).get(deployment=target)
    assert event.event_name == "invitee.created"
    assert not every(RejectedDelivery).filter(deployment=target).exists()
    assert signing_key(target, purpose="a test") != TYPED_KEY
