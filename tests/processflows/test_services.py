"""Writes to processflows: versions, names, roles, deploying (credentials checked, the
Processflow URL), deleting and replaying."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from connectors.calendly.sandbox import seed
from portal.processflows import registration, services
from portal.processflows.models import (
    Deployment,
    Processflow,
    RegistrationState,
    Run,
    RunStatus,
)
from portal.tenancy.models import Membership
from portal.vault.models import CredentialStatus
from tests.factories import (
    every,
    make_credential,
    make_deployment,
    make_event,
    make_processflow,
    make_run,
    webhook_definition,
)


@pytest.fixture
def sandbox(monkeypatch, calendly_sandbox, settings):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    return calendly_sandbox


@pytest.fixture
def owner_membership(acme, owner) -> Membership:
    return every(Membership).get(organization=acme, user=owner)


@pytest.fixture
def viewer_membership(acme, viewer) -> Membership:
    return every(Membership).get(organization=acme, user=viewer)


@pytest.fixture
def credential(acme):
    return make_credential(acme)


@pytest.fixture
def flow(acme, owner, credential):
    return make_processflow(acme, credential)


def with_events(credential, *events):
    definition = webhook_definition(credential)
    definition["trigger"]["events"] = list(events)
    return definition


def test_creating_a_flow_makes_version_1(acme, owner_membership, credential):
    flow = services.create_processflow(
        acme, actor=owner_membership, name="Bookings", definition=webhook_definition(credential)
    )
    assert [v.number for v in flow.versions.all()] == [1]
    assert flow.trigger_type == "webhook"
    assert flow.created_by == owner_membership.user
    assert not flow.deployments.exists()


def test_editing_the_definition_makes_version_2(acme, owner_membership, credential, flow):
    services.update_processflow(
        acme,
        actor=owner_membership,
        processflow_id=flow.pk,
        definition=with_events(credential, "invitee.canceled"),
    )
    latest = flow.versions.first()
    assert latest.number == 2
    assert latest.definition["trigger"]["events"] == ["invitee.canceled"]


def test_saving_an_unchanged_definition_makes_no_version(acme, owner_membership, credential, flow):
    services.update_processflow(
        acme,
        actor=owner_membership,
        processflow_id=flow.pk,
        name="Bookings renamed",
        definition=webhook_definition(credential),
    )
    assert [v.number for v in flow.versions.all()] == [1]
    flow.refresh_from_db()
    assert flow.name == "Bookings renamed"


def test_a_deployment_keeps_its_pinned_version_until_redeployed(
    sandbox, acme, owner_membership, credential, flow
):
    first = services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    services.update_processflow(
        acme,
        actor=owner_membership,
        processflow_id=flow.pk,
        definition=with_events(credential, "invitee.canceled"),
    )
    first.refresh_from_db()
    assert first.state == Deployment.State.ACTIVE
    assert first.version.number == 1

    second = services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    first.refresh_from_db()
    assert second.version.number == 2
    assert first.state == Deployment.State.UNDEPLOYED
    assert list(flow.deployments.filter(state="active")) == [second]


def test_deploying_the_deployed_version_again_changes_nothing(
    sandbox, acme, owner_membership, flow
):
    first = services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    again = services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    assert again == first
    assert flow.deployments.count() == 1


def test_the_trigger_type_cannot_change(acme, owner_membership, flow):
    polling = {
        "trigger": {"type": "polling", "schedule": {"every_seconds": 60}},
        "steps": [{"name": "document", "type": "map", "mapping": {"at": "{{ trigger.tick }}"}}],
    }
    with pytest.raises(ValidationError) as caught:
        services.update_processflow(
            acme, actor=owner_membership, processflow_id=flow.pk, definition=polling
        )
    assert caught.value.message_dict == {
        "trigger.type": ["A flow keeps its trigger type; create a new flow to change it."]
    }
    assert flow.versions.count() == 1


def test_names_are_unique_within_an_organization(acme, owner_membership, credential, flow):
    with pytest.raises(ValidationError) as caught:
        services.create_processflow(
            acme, actor=owner_membership, name="bookings", definition=webhook_definition(credential)
        )
    assert caught.value.message_dict == {"name": ["A processflow named 'bookings' exists already."]}


def test_another_organization_may_use_the_same_name(globex, outsider, flow):
    theirs = make_processflow(globex, make_credential(globex), name=flow.name)
    assert theirs.name == flow.name
    assert every(Processflow).filter(name=flow.name).count() == 2


def test_renaming_onto_another_flows_name_is_refused(acme, owner_membership, credential, flow):
    other = make_processflow(acme, credential, name="Cancellations")
    with pytest.raises(ValidationError):
        services.update_processflow(
            acme, actor=owner_membership, processflow_id=other.pk, name="Bookings"
        )


def test_a_viewer_cannot_create_a_flow(acme, viewer_membership, credential):
    with pytest.raises(PermissionDenied, match=r"viewer"):
        services.create_processflow(
            acme, actor=viewer_membership, name="Nope", definition=webhook_definition(credential)
        )
    assert not every(Processflow).exists()


def test_a_viewer_cannot_edit_deploy_undeploy_or_delete(acme, viewer_membership, flow):
    for write in (
        lambda: services.update_processflow(
            acme, actor=viewer_membership, processflow_id=flow.pk, name="Nope"
        ),
        lambda: services.deploy(acme, actor=viewer_membership, processflow_id=flow.pk),
        lambda: services.undeploy(acme, actor=viewer_membership, processflow_id=flow.pk),
        lambda: services.delete_processflow(acme, actor=viewer_membership, processflow_id=flow.pk),
    ):
        with pytest.raises(PermissionDenied):
            write()
    flow.refresh_from_db()
    assert flow.name == "Bookings"
    assert not flow.deployments.exists()


def test_another_organizations_flow_is_not_found(globex, outsider, flow):
    from django.http import Http404

    theirs = every(Membership).get(user=outsider)
    with pytest.raises(Http404):
        services.deploy(globex, actor=theirs, processflow_id=flow.pk)


def test_deploying_with_an_invalid_credential_is_refused_naming_it(
    sandbox, acme, owner_membership, flow, credential
):
    sandbox.revoke_token(seed.OWNER_TOKEN)
    with pytest.raises(ValidationError) as caught:
        services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    message = caught.value.messages[0]
    assert message.startswith("Credential 'Sales team' (Calendly) is not valid:")
    assert message.endswith("Fix it and validate it again before deploying.")
    assert not flow.deployments.exists()


def test_an_unvalidated_credential_is_validated_before_deploying(
    sandbox, acme, owner_membership, flow, credential
):
    assert credential.status == CredentialStatus.UNVALIDATED
    services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.VALID
    assert any(e.path == "/users/me" for e in sandbox.exchanges)


def test_a_credential_that_cannot_be_checked_refuses_the_deploy(
    sandbox, acme, owner_membership, flow, credential
):
    sandbox.inject_fault("/users/me", "status", times=10, status=503)
    with pytest.raises(ValidationError) as caught:
        services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    assert caught.value.messages[0].startswith(
        "Credential 'Sales team' (Calendly) could not be validated:"
    )
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.UNVALIDATED
    assert not flow.deployments.exists()


def test_every_credential_of_the_flow_is_checked(sandbox, acme, owner_membership, credential):
    broken = make_credential(acme, name="Old token", token="revoked-token")
    steps = [
        {
            "name": "event",
            "application": "calendly",
            "credential": broken.pk,
            "action": "scheduled_event",
            "filters": [["uuid", "{{ trigger.payload.event }}"]],
        }
    ]
    flow = make_processflow(acme, credential, steps=steps)
    with pytest.raises(ValidationError, match=r"Credential 'Old token' \(Calendly\) is not valid"):
        services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)


def test_deploying_gives_an_unguessable_processflow_url(sandbox, acme, owner_membership, flow):
    deployment = services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    url = registration.processflow_url(flow)
    match = re.fullmatch(r"https://portal\.example\.com/hooks/([A-Za-z0-9_-]+)/", url)
    assert match
    assert len(match.group(1)) >= 32
    assert deployment.registration_state == RegistrationState.PENDING
    other = make_processflow(acme, make_credential(acme, name="Other"), name="Other")
    assert registration.processflow_url(other) != url


def test_the_processflow_url_is_stable_across_redeploys(
    sandbox, acme, owner_membership, credential, flow
):
    services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    before = registration.processflow_url(flow)
    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    services.update_processflow(
        acme,
        actor=owner_membership,
        processflow_id=flow.pk,
        definition=with_events(credential, "invitee.canceled"),
    )
    services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    flow.refresh_from_db()
    assert registration.processflow_url(flow) == before


def test_undeploying_a_flow_that_is_not_deployed_is_refused(acme, owner_membership, flow):
    with pytest.raises(ValidationError, match=r"This processflow is not deployed\."):
        services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)


def test_deleting_a_deployed_flow_is_refused(sandbox, acme, owner_membership, flow):
    services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    with pytest.raises(ValidationError, match=r"Undeploy the processflow before deleting it\."):
        services.delete_processflow(acme, actor=owner_membership, processflow_id=flow.pk)
    assert every(Processflow).filter(pk=flow.pk).exists()


def test_an_undeployed_flow_is_deleted_with_its_history(sandbox, acme, owner_membership, flow):
    services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)
    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    deployment = flow.deployments.get()
    make_run(make_event(deployment), status=RunStatus.FAILED)
    services.delete_processflow(acme, actor=owner_membership, processflow_id=flow.pk)
    assert not every(Processflow).filter(pk=flow.pk).exists()
    assert not every(Run).exists()


def test_a_failed_run_is_replayed_as_a_new_run(acme, owner_membership, flow):
    run = make_run(
        make_event(make_deployment(flow)), status=RunStatus.FAILED, input={"payload": {"a": 1}}
    )
    replay = services.replay_run(acme, actor=owner_membership, run_id=run.pk)
    assert replay.pk != run.pk
    assert replay.replay_of == run
    assert replay.status == RunStatus.QUEUED
    assert replay.version == run.version
    assert replay.input == {"payload": {"a": 1}}


@pytest.mark.parametrize(
    "status", [RunStatus.SUCCEEDED, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING]
)
def test_only_failed_runs_can_be_replayed(acme, owner_membership, flow, status):
    run = make_run(make_event(make_deployment(flow)), status=status)
    with pytest.raises(
        ValidationError, match=f"Only failed runs can be replayed; this one is {status}"
    ):
        services.replay_run(acme, actor=owner_membership, run_id=run.pk)
    assert every(Run).count() == 1


def test_a_viewer_cannot_replay(acme, viewer_membership, flow):
    run = make_run(make_event(make_deployment(flow)), status=RunStatus.FAILED)
    with pytest.raises(PermissionDenied):
        services.replay_run(acme, actor=viewer_membership, run_id=run.pk)
    assert every(Run).count() == 1


def test_deleting_waits_for_the_subscription_to_be_deleted_at_the_application(
    acme, owner_membership, flow
):
    make_deployment(
        flow,
        state=Deployment.State.UNDEPLOYED,
        registration_state=RegistrationState.REMOVING,
        subscription_uri="https://api.calendly.com/webhook_subscriptions/ABC",
    )
    with pytest.raises(ValidationError, match="still being deleted at the application"):
        services.delete_processflow(acme, actor=owner_membership, processflow_id=flow.pk)
    assert every(Processflow).filter(pk=flow.pk).exists()
