"""Webhook subscriptions at Calendly (the sandbox): registered when a triggered flow is
deployed, with our own signing key; replaced when one exists already; failures shown with the
API's message; deleted when undeployed; drift repaired by the reconciler."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from connectors.calendly.sandbox import seed
from portal.applications import deliveries
from portal.processflows import registration, services, tasks
from portal.processflows.models import Deployment, RegistrationState
from portal.processflows.registration import RegistrationUnavailable, processflow_url
from portal.processflows.signing import signing_key
from portal.tenancy.models import Membership
from portal.vault import calls
from tests.factories import every, make_credential, make_processflow, webhook_definition


@pytest.fixture
def sandbox(monkeypatch, calendly_sandbox, settings, destination):
    """The sandbox as Calendly; Processflow URLs point at a loopback server that takes the
    deliveries, so what the sandbox sends can be checked."""
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = destination.url
    return calendly_sandbox


@pytest.fixture
def owner_membership(acme, owner) -> Membership:
    return every(Membership).get(organization=acme, user=owner)


@pytest.fixture
def credential(acme):
    return make_credential(acme)


@pytest.fixture
def flow(acme, owner, credential):
    definition = webhook_definition(credential)
    definition["trigger"]["events"] = ["invitee.created", "invitee.canceled"]
    return make_processflow(acme, credential, definition=definition)


def deploy(acme, owner_membership, flow) -> Deployment:
    return services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)


def deployed(acme, owner_membership, flow) -> Deployment:
    """Deploy, and run the registration task as a worker would."""
    deployment = deploy(acme, owner_membership, flow)
    assert deployment.registration_state == RegistrationState.PENDING
    tasks.register_subscription(deployment.organization_id, deployment.pk)
    deployment.refresh_from_db()
    return deployment


def organization_uri(sandbox) -> str:
    return f"{sandbox.url}/organizations/{seed.ORGANIZATION_UUID}"


def verifies(delivery, key) -> bool:
    return deliveries.verify_delivery(
        "calendly", headers=delivery.headers, raw_body=delivery.body, signing_key=key, tolerance=60
    ).ok


def test_deploying_subscribes_the_processflow_url_with_the_flows_events_and_scope(
    sandbox, acme, owner_membership, flow
):
    deployment = deployed(acme, owner_membership, flow)
    [subscription] = sandbox.subscriptions
    assert subscription["callback_url"] == processflow_url(flow)
    assert sorted(subscription["events"]) == ["invitee.canceled", "invitee.created"]
    assert subscription["scope"] == "organization"
    assert subscription["organization"] == organization_uri(sandbox)
    assert subscription["state"] == "active"
    assert deployment.registration_state == RegistrationState.ACTIVE
    assert deployment.subscription_uri == subscription["uri"]
    assert deployment.registered_url == processflow_url(flow)
    assert "Subscribed at Calendly" in deployment.registration_message


def test_the_subscription_signs_with_the_deployments_own_random_key(
    sandbox, acme, owner_membership, flow
):
    deployment = deployed(acme, owner_membership, flow)
    key = signing_key(deployment, purpose="a test")
    assert len(key or "") >= 32
    assert key not in deployment.signing_key_ciphertext

    sandbox.fire("invitee.created")
    [delivery] = sandbox.wait_for_deliveries()
    assert delivery.url == processflow_url(flow)
    assert verifies(delivery, key)
    assert not verifies(delivery, sandbox.organization_signing_key)


def test_each_deployment_gets_a_different_signing_key(sandbox, acme, owner_membership, credential):
    first = deployed(acme, owner_membership, make_processflow(acme, credential, name="One"))
    second = deployed(acme, owner_membership, make_processflow(acme, credential, name="Two"))
    assert signing_key(first, purpose="a test") != signing_key(second, purpose="a test")


def test_the_deployed_url_accepts_deliveries_only_while_deployed(
    sandbox, client, acme, owner_membership, flow
):
    deployment = deployed(acme, owner_membership, flow)
    path = f"/hooks/{flow.hook_id}/"
    assert client.post(path, b"{}", content_type="application/json").status_code == 401

    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    tasks.remove_subscription(deployment.organization_id, deployment.pk)
    assert client.post(path, b"{}", content_type="application/json").status_code == 404


def test_undeploying_deletes_the_subscription_at_the_application(
    sandbox, acme, owner_membership, flow
):
    deployment = deployed(acme, owner_membership, flow)
    undeployed = services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    assert undeployed.registration_state == RegistrationState.REMOVING
    assert len(sandbox.subscriptions) == 1

    assert (
        tasks.remove_subscription(deployment.organization_id, deployment.pk)
        == RegistrationState.REMOVED
    )
    assert sandbox.subscriptions == []
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.UNDEPLOYED
    assert deployment.registration_state == RegistrationState.REMOVED
    assert deployment.subscription_uri == ""


def test_an_existing_subscription_for_the_url_is_replaced(
    sandbox, acme, owner_membership, flow, credential
):
    made_by_hand = calls.subscribe(
        credential,
        url=processflow_url(flow),
        events=["invitee.canceled"],
        options={"scope": "organization"},
        signing_key="someone-elses-key",
    )
    assert made_by_hand.ok

    deployment = deployed(acme, owner_membership, flow)
    [subscription] = sandbox.subscriptions
    assert subscription["uri"] != made_by_hand.subscription["uri"]
    assert subscription["uri"] == deployment.subscription_uri
    assert sorted(subscription["events"]) == ["invitee.canceled", "invitee.created"]
    assert deployment.registration_state == RegistrationState.ACTIVE
    assert "replaced a subscription that already existed" in deployment.registration_message

    sandbox.fire("invitee.created")
    [delivery] = sandbox.wait_for_deliveries()
    assert verifies(delivery, signing_key(deployment, purpose="a test"))


def test_a_refusal_by_the_application_shows_failed_with_its_message(
    sandbox, acme, owner_membership
):
    free = make_credential(acme, name="Freelancer", token=seed.FREE_PLAN_TOKEN)
    flow = make_processflow(acme, free)
    deployment = deployed(acme, owner_membership, flow)
    assert deployment.registration_state == RegistrationState.FAILED
    assert "upgrade" in deployment.registration_message.lower()
    assert sandbox.subscriptions == []


def test_an_outage_fails_the_registration_for_now_and_asks_for_a_retry(
    sandbox, acme, owner_membership, flow
):
    deployment = deploy(acme, owner_membership, flow)
    sandbox.inject_fault("/webhook_subscriptions", "status", times=4, status=500, method="POST")
    with pytest.raises(RegistrationUnavailable):
        registration.register(deployment)
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.FAILED
    assert "500" in deployment.registration_message
    assert sandbox.subscriptions == []


def test_the_registration_task_retries_after_an_outage(sandbox, acme, owner_membership, flow):
    deployment = deploy(acme, owner_membership, flow)
    sandbox.inject_fault("/webhook_subscriptions", "status", times=4, status=500, method="POST")
    result = tasks.register_subscription.apply(args=[deployment.organization_id, deployment.pk])
    assert result.get() == RegistrationState.ACTIVE
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.ACTIVE
    assert len(sandbox.subscriptions) == 1


def test_redeploying_a_failed_registration_tries_again(sandbox, acme, owner_membership, flow):
    deployment = deploy(acme, owner_membership, flow)
    sandbox.inject_fault("/webhook_subscriptions", "status", times=4, status=500, method="POST")
    with pytest.raises(RegistrationUnavailable):
        registration.register(deployment)
    again = deploy(acme, owner_membership, flow)
    assert again.pk == deployment.pk
    assert again.registration_state == RegistrationState.PENDING
    tasks.register_subscription(again.organization_id, again.pk)
    again.refresh_from_db()
    assert again.registration_state == RegistrationState.ACTIVE


def test_a_flow_undeployed_while_registering_leaves_no_subscription(
    sandbox, acme, owner_membership, flow
):
    deployment = deploy(acme, owner_membership, flow)
    # The worker loaded the deployment, then the user undeployed it.
    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    registration.register(deployment)
    assert sandbox.subscriptions == []
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.REMOVED


def test_redeploying_with_the_same_trigger_keeps_the_subscription(
    sandbox, acme, owner_membership, credential, flow
):
    first = deployed(acme, owner_membership, flow)
    definition = flow.versions.first().definition
    definition["steps"][0]["mapping"]["name"] = "{{ trigger.payload.name }}"
    services.update_processflow(
        acme, actor=owner_membership, processflow_id=flow.pk, definition=definition
    )
    second = deploy(acme, owner_membership, flow)

    assert second.version.number == 2
    assert second.registration_state == RegistrationState.ACTIVE
    assert second.subscription_uri == first.subscription_uri
    [subscription] = sandbox.subscriptions
    assert subscription["uri"] == second.subscription_uri
    first.refresh_from_db()
    assert first.registration_state == RegistrationState.REMOVED
    assert tasks.reconcile_subscriptions() == {"ok": 1}

    sandbox.fire("invitee.created")
    [delivery] = sandbox.wait_for_deliveries()
    assert verifies(delivery, signing_key(second, purpose="a test"))


def test_redeploying_with_other_events_replaces_the_subscription(
    sandbox, acme, owner_membership, credential, flow
):
    first = deployed(acme, owner_membership, flow)
    definition = flow.versions.first().definition
    definition["trigger"]["events"] = ["invitee_no_show.created"]
    services.update_processflow(
        acme, actor=owner_membership, processflow_id=flow.pk, definition=definition
    )
    second = deploy(acme, owner_membership, flow)
    assert second.registration_state == RegistrationState.PENDING
    tasks.register_subscription(second.organization_id, second.pk)
    tasks.remove_subscription(first.organization_id, first.pk)

    [subscription] = sandbox.subscriptions
    assert subscription["events"] == ["invitee_no_show.created"]
    second.refresh_from_db()
    assert subscription["uri"] == second.subscription_uri


# --- The reconciler -------------------------------------------------------------------------


def test_the_reconciler_leaves_a_healthy_subscription_alone(sandbox, acme, owner_membership, flow):
    deployment = deployed(acme, owner_membership, flow)
    assert tasks.reconcile_subscriptions() == {"ok": 1}
    [subscription] = sandbox.subscriptions
    assert subscription["uri"] == deployment.subscription_uri


def test_the_reconciler_recreates_a_subscription_deleted_at_the_application(
    sandbox, acme, owner_membership, flow, credential
):
    deployment = deployed(acme, owner_membership, flow)
    assert calls.unsubscribe(credential, deployment.subscription_uri).ok
    assert sandbox.subscriptions == []

    assert tasks.reconcile_subscriptions() == {"repaired": 1}
    deployment.refresh_from_db()
    [subscription] = sandbox.subscriptions
    assert subscription["uri"] == deployment.subscription_uri
    assert subscription["callback_url"] == processflow_url(flow)
    assert deployment.registration_state == RegistrationState.ACTIVE
    assert deployment.registration_message == (
        "Repaired: the subscription was deleted at the application."
    )
    sandbox.fire("invitee.created")
    [delivery] = sandbox.wait_for_deliveries()
    assert verifies(delivery, signing_key(deployment, purpose="a test"))


def test_the_reconciler_replaces_a_subscription_disabled_at_the_application(
    sandbox, acme, owner_membership, flow
):
    deployment = deployed(acme, owner_membership, flow)
    sandbox.disable_subscription(deployment.subscription_uri.rsplit("/", 1)[1])

    assert tasks.reconcile_subscriptions() == {"repaired": 1}
    [subscription] = sandbox.subscriptions
    assert subscription["state"] == "active"
    deployment.refresh_from_db()
    assert subscription["uri"] == deployment.subscription_uri
    assert deployment.registration_message == (
        "Repaired: the subscription was disabled at the application."
    )


def test_the_reconciler_repairs_a_subscription_with_the_wrong_events(
    sandbox, acme, owner_membership, flow, credential
):
    deployment = deployed(acme, owner_membership, flow)
    # Someone re-created the subscription by hand with other events.
    calls.unsubscribe(credential, deployment.subscription_uri)
    other = calls.subscribe(
        credential,
        url=processflow_url(flow),
        events=["invitee.canceled"],
        options={"scope": "organization"},
        signing_key="x" * 32,
    )
    every(Deployment).filter(pk=deployment.pk).update(subscription_uri=other.subscription["uri"])

    assert tasks.reconcile_subscriptions() == {"repaired": 1}
    [subscription] = sandbox.subscriptions
    assert sorted(subscription["events"]) == ["invitee.canceled", "invitee.created"]
    deployment.refresh_from_db()
    assert deployment.registration_message == "Repaired: the subscription's events differ."


def test_the_reconciler_moves_the_subscription_when_the_portal_url_changes(
    sandbox, acme, owner_membership, flow, settings, destination_factory
):
    deployment = deployed(acme, owner_membership, flow)
    old_url = processflow_url(flow)
    settings.PORTAL_BASE_URL = destination_factory(201).url
    new_url = processflow_url(flow)
    assert new_url != old_url

    assert tasks.reconcile_subscriptions() == {"repaired": 1}
    [subscription] = sandbox.subscriptions
    assert subscription["callback_url"] == new_url
    deployment.refresh_from_db()
    assert deployment.registered_url == new_url
    assert deployment.registration_message == (
        "Repaired: the Processflow URL changed (PORTAL_BASE_URL)."
    )


def test_the_reconciler_registers_a_subscription_that_failed_before(
    sandbox, acme, owner_membership, flow
):
    deployment = deploy(acme, owner_membership, flow)
    sandbox.inject_fault("/webhook_subscriptions", "status", times=4, status=500, method="POST")
    with pytest.raises(RegistrationUnavailable):
        registration.register(deployment)

    assert tasks.reconcile_subscriptions() == {"repaired": 1}
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.ACTIVE
    assert len(sandbox.subscriptions) == 1


def test_the_reconciler_retries_a_lost_removal(sandbox, acme, owner_membership, flow):
    deployment = deployed(acme, owner_membership, flow)
    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    # The removal task was lost with the broker; the bound for retrying it has passed.
    every(Deployment).filter(pk=deployment.pk).update(
        undeployed_at=timezone.now() - timedelta(hours=1)
    )
    assert len(sandbox.subscriptions) == 1

    assert tasks.reconcile_subscriptions() == {"removed": 1}
    assert sandbox.subscriptions == []
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.REMOVED


def test_the_reconciler_retries_a_removal_that_failed(sandbox, acme, owner_membership, flow):
    deployment = deployed(acme, owner_membership, flow)
    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    sandbox.inject_fault("/webhook_subscriptions", "status", times=4, status=500, method="DELETE")
    assert (
        tasks.remove_subscription(deployment.organization_id, deployment.pk)
        == RegistrationState.FAILED
    )
    assert len(sandbox.subscriptions) == 1
    every(Deployment).filter(pk=deployment.pk).update(
        undeployed_at=timezone.now() - timedelta(hours=1)
    )

    assert tasks.reconcile_subscriptions() == {"removed": 1}
    assert sandbox.subscriptions == []


# --- The seed's manual way: another flow's "Create Webhook Subscription" step ----------------


def subscribing_flow(acme, credential, url: str, name: str = "Subscribe bookings"):
    """A polling flow that runs once and subscribes ``url``, as the seed does it."""
    definition = {
        "trigger": {"type": "polling", "schedule": {"once": True}, "source": None},
        "steps": [
            {
                "name": "subscribe",
                "type": "action",
                "application": "calendly",
                "credential": credential.pk,
                "action": "webhook_subscription",
                "filters": [
                    ["events[]", "invitee.created"],
                    ["scope", "organization"],
                    ["organization", "~{GetOrganizationUrl}~"],
                    ["url", url],
                ],
            }
        ],
    }
    return make_processflow(acme, credential, name=name, definition=definition)


@pytest.fixture
def manual_flow(acme, owner, credential):
    definition = webhook_definition(credential)
    definition["trigger"]["registration"] = "manual"
    return make_processflow(acme, credential, definition=definition)


def run_once(deployment: Deployment):
    """What the scheduler and a worker do for one tick of a polling deployment."""
    from portal.processflows import execution, polling, runs
    from portal.processflows.models import TriggerEvent

    assert polling.poll(deployment.organization_id, deployment.pk) == 1
    event = every(TriggerEvent).filter(deployment=deployment).latest("pk")
    run = runs.start_run_for_event(event.organization_id, event.pk)
    execution.execute(run.organization_id, run.pk)
    run.refresh_from_db()
    return run


def test_a_manually_registered_flow_waits_for_its_subscription(
    sandbox, acme, owner_membership, manual_flow
):
    deployment = deploy(acme, owner_membership, manual_flow)
    assert deployment.registration_state == RegistrationState.MANUAL
    assert "Create Webhook Subscription" in deployment.registration_message
    assert signing_key(deployment, purpose="a test")
    assert sandbox.subscriptions == []
    # Neither the registration task nor the reconciler subscribes it.
    assert (
        tasks.register_subscription(deployment.organization_id, deployment.pk)
        == RegistrationState.MANUAL
    )
    assert tasks.reconcile_subscriptions() == {}
    assert sandbox.subscriptions == []


def test_another_flows_create_webhook_subscription_step_subscribes_it_with_its_key(
    sandbox, acme, owner_membership, credential, manual_flow
):
    target = deploy(acme, owner_membership, manual_flow)
    subscriber = subscribing_flow(acme, credential, processflow_url(manual_flow))
    run = run_once(deploy(acme, owner_membership, subscriber))
    assert run.status == "succeeded", run.error

    [subscription] = sandbox.subscriptions
    assert subscription["callback_url"] == processflow_url(manual_flow)
    assert subscription["events"] == ["invitee.created"]
    assert subscription["scope"] == "organization"
    assert subscription["organization"] == organization_uri(sandbox)
    target.refresh_from_db()
    assert target.registration_state == RegistrationState.ACTIVE
    assert target.subscription_uri == subscription["uri"]
    assert "Subscribed by processflow 'Subscribe bookings'" in target.registration_message

    sandbox.fire("invitee.created")
    [delivery] = sandbox.wait_for_deliveries()
    assert delivery.url == processflow_url(manual_flow)
    assert verifies(delivery, signing_key(target, purpose="a test"))


def test_subscribing_a_flow_that_is_not_deployed_fails_and_names_it(
    sandbox, acme, owner_membership, credential, manual_flow
):
    subscriber = subscribing_flow(acme, credential, processflow_url(manual_flow))
    run = run_once(deploy(acme, owner_membership, subscriber))

    assert run.status == "failed"
    assert f"Deploy processflow {manual_flow.name!r} before subscribing its URL." in run.error
    assert sandbox.subscriptions == []


def test_running_the_subscribing_flow_again_replaces_its_subscription(
    sandbox, acme, owner_membership, credential, manual_flow
):
    target = deploy(acme, owner_membership, manual_flow)
    url = processflow_url(manual_flow)
    first = run_once(deploy(acme, owner_membership, subscribing_flow(acme, credential, url)))
    assert first.status == "succeeded", first.error
    # A second subscribing flow for the same URL meets Calendly's 409 and replaces it.
    second_flow = subscribing_flow(acme, credential, url, name="Subscribe once more")
    second = run_once(deploy(acme, owner_membership, second_flow))

    assert second.status == "succeeded", second.error
    [subscription] = sandbox.subscriptions
    target.refresh_from_db()
    assert target.subscription_uri == subscription["uri"]
    sandbox.fire("invitee.created")
    [delivery] = sandbox.wait_for_deliveries()
    assert verifies(delivery, signing_key(target, purpose="a test"))


def test_the_subscribing_run_never_stores_the_signing_key(
    sandbox, acme, owner_membership, credential, manual_flow
):
    import json

    target = deploy(acme, owner_membership, manual_flow)
    subscriber = subscribing_flow(acme, credential, processflow_url(manual_flow))
    run = run_once(deploy(acme, owner_membership, subscriber))
    stored = json.dumps(
        [run.input, run.output, run.error]
        + [[s.request, s.output, s.error] for s in run.steps.all()],
        default=str,
    )
    assert signing_key(target, purpose="a test") not in stored


def test_undeploying_deletes_the_subscription_another_flow_made(
    sandbox, acme, owner_membership, credential, manual_flow
):
    target = deploy(acme, owner_membership, manual_flow)
    run_once(
        deploy(
            acme, owner_membership, subscribing_flow(acme, credential, processflow_url(manual_flow))
        )
    )
    assert len(sandbox.subscriptions) == 1

    services.undeploy(acme, actor=owner_membership, processflow_id=manual_flow.pk)
    assert tasks.remove_subscription(target.organization_id, target.pk) == RegistrationState.REMOVED
    assert sandbox.subscriptions == []


def test_the_reconciler_reports_a_lost_manual_subscription_instead_of_subscribing(
    sandbox, acme, owner_membership, credential, manual_flow
):
    target = deploy(acme, owner_membership, manual_flow)
    url = processflow_url(manual_flow)
    run_once(deploy(acme, owner_membership, subscribing_flow(acme, credential, url)))
    target.refresh_from_db()
    calls.unsubscribe(credential, target.subscription_uri)

    assert tasks.reconcile_subscriptions() == {"reported": 1}
    assert sandbox.subscriptions == []
    target.refresh_from_db()
    assert target.registration_state == RegistrationState.MANUAL
    assert target.registration_message.startswith(
        "The subscription was deleted at the application; run the processflow that subscribes"
    )


def test_a_redelivered_registration_task_keeps_the_live_subscription(
    sandbox, acme, owner_membership, flow
):
    deployment = deployed(acme, owner_membership, flow)
    key = signing_key(deployment, purpose="a test")
    assert (
        tasks.register_subscription(deployment.organization_id, deployment.pk)
        == RegistrationState.ACTIVE
    )
    deployment.refresh_from_db()
    [subscription] = sandbox.subscriptions
    assert subscription["uri"] == deployment.subscription_uri
    assert signing_key(deployment, purpose="a test") == key
