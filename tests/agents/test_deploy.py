"""Deploying to an agent group: definitions name the agents' credentials, saving checks
that the group reports them, deploying needs them valid; subscriptions and polls become
jobs for the group's agents, with the portal-made signing key handed over in the job."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from portal.agents.models import AgentGroup, AgentJob
from portal.processflows import polling, registration, services
from portal.processflows.models import Deployment, RegistrationState, TriggerEvent
from portal.processflows.signing import signing_key
from tests.agents.conftest import BASE, MAIN, agent_definition
from tests.factories import every, owner_of, register_agent

MISSING = (
    "Agent group 'Plant A' has no Calendly credential named 'sales'; add it in the agent's "
    "App Configurations panel."
)


def test_saving_a_definition_naming_a_credential_the_group_lacks_is_refused_clearly(acme, plant):
    with pytest.raises(ValidationError) as refused:
        services.create_processflow(
            acme,
            actor=owner_of(acme),
            name="Bookings",
            definition=agent_definition(credential="sales"),
            agent_group=plant.agent.group,
        )
    assert refused.value.message_dict == {"trigger.credential": [MISSING]}


def test_the_refused_application_is_offered_to_the_groups_agents(acme, owner):
    bare = register_agent(acme, applications=[])
    with pytest.raises(ValidationError):
        services.create_processflow(
            acme, actor=owner_of(acme), name="Bookings",
            definition=agent_definition(), agent_group=bare.agent.group,
        )  # fmt: skip
    from tests.agents.conftest import agent_client

    answer = agent_client(bare.secret).post(f"{BASE}heartbeat", {}, format="json").json()
    assert answer["applications"] == [{"application": "calendly", "title": "Calendly"}]


def test_the_api_creates_a_flow_for_a_group_and_checks_its_credentials(api, acme, cast, plant):
    client = api(cast["member"], acme)
    body = {
        "name": "Bookings",
        "definition": agent_definition(),
        "agent_group": plant.agent.group_id,
    }
    created = client.post("/api/v1/organizations/acme/processflows/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["agent_group"] == plant.agent.group_id
    body = {**body, "name": "Other", "definition": agent_definition(credential="sales")}
    refused = client.post("/api/v1/organizations/acme/processflows/", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"trigger.credential": [MISSING]}


def test_another_organizations_group_cannot_be_chosen(api, acme, cast, globex, outsider):
    theirs = register_agent(globex, applications=MAIN).agent.group
    body = {"name": "Bookings", "definition": agent_definition(), "agent_group": theirs.pk}
    refused = api(cast["member"], acme).post(
        "/api/v1/organizations/acme/processflows/", body, format="json"
    )
    assert refused.status_code == 400
    assert "agent_group" in refused.json()["error"]["fields"]


def test_deploying_needs_the_credential_reported_valid(acme, owner, plant, group_flow):
    from portal.agents import services as agent_services

    agent_services.heartbeat(plant.agent, applications=[{**MAIN[0], "valid": False}])
    with pytest.raises(ValidationError) as refused:
        services.deploy(acme, actor=owner_of(acme), processflow_id=group_flow.pk)
    assert "reports its Calendly credential 'main' as not valid" in refused.value.messages[0]


def test_a_deployment_to_a_group_is_shown_as_on_that_group(acme, owner, plant, group_flow):
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=group_flow.pk)
    assert deployment.agent_group == plant.agent.group
    assert deployment.get_agent_display() == "agent group Plant A"


def test_subscribing_becomes_a_job_with_the_portal_made_signing_key(
    acme, owner, plant, plant_api, group_flow
):
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=group_flow.pk)
    assert registration.register(deployment) == RegistrationState.PENDING
    (job,) = plant_api.get(f"{BASE}jobs").json()["jobs"]
    deployment.refresh_from_db()
    assert job["kind"] == "subscribe"
    assert job["application"] == "calendly"
    assert job["credential"] == "main"
    assert job["events"] == ["invitee.created"]
    assert job["url"] == registration.processflow_url(group_flow)
    assert job["signing_key"] == signing_key(deployment, purpose="test")
    answer = {"ok": True, "subscription": "https://api.calendly.com/webhook_subscriptions/W1"}
    first = plant_api.post(f"{BASE}jobs/{job['id']}/result", answer, format="json")
    again = plant_api.post(f"{BASE}jobs/{job['id']}/result", answer, format="json")
    assert (first.json()["applied"], again.json()["applied"]) == (True, False)
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.ACTIVE
    assert deployment.subscription_uri == answer["subscription"]
    assert "signing_key" not in repr(every(AgentJob).values_list("payload", "result"))


def test_a_failed_subscription_says_why(acme, owner, plant, plant_api, group_flow):
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=group_flow.pk)
    registration.register(deployment)
    (job,) = plant_api.get(f"{BASE}jobs").json()["jobs"]
    answer = {"ok": False, "error": "Calendly answered 401: the token is not valid."}
    plant_api.post(f"{BASE}jobs/{job['id']}/result", answer, format="json")
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.FAILED
    assert deployment.registration_message == answer["error"]


def test_undeploying_becomes_an_unsubscribe_job(acme, owner, plant, plant_api, group_flow):
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=group_flow.pk)
    registration.register(deployment)
    (job,) = plant_api.get(f"{BASE}jobs").json()["jobs"]
    uri = "https://api.calendly.com/webhook_subscriptions/W1"
    plant_api.post(
        f"{BASE}jobs/{job['id']}/result", {"ok": True, "subscription": uri}, format="json"
    )
    services.undeploy(acme, actor=owner_of(acme), processflow_id=group_flow.pk)
    deployment.refresh_from_db()
    assert registration.unregister(deployment) == RegistrationState.REMOVING
    (job,) = plant_api.get(f"{BASE}jobs").json()["jobs"]
    assert (job["kind"], job["subscription"]) == ("unsubscribe", uri)
    plant_api.post(f"{BASE}jobs/{job['id']}/result", {"ok": True}, format="json")
    deployment.refresh_from_db()
    assert deployment.registration_state == RegistrationState.REMOVED


def test_a_polling_deployment_of_a_group_is_polled_by_its_agent_once_per_record(
    acme, owner, plant, plant_api
):
    flow = services.create_processflow(
        acme, actor=owner_of(acme), name="Poll", agent_group=plant.agent.group,
        definition={
            "trigger": {"type": "polling", "schedule": {"every_seconds": 60},
                        "source": {"application": "calendly", "credential": "main",
                                   "action": "scheduled_events", "filters": []}},
            "steps": [{"name": "doc", "type": "map", "mapping": {"u": "{{ trigger.uri }}"}}],
        },
    )  # fmt: skip
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)
    for _ in range(2):  # two ticks of the schedule before the agent asked: one job
        assert polling.poll(acme.pk, deployment.pk) == 0
    (job,) = plant_api.get(f"{BASE}jobs").json()["jobs"]
    assert (job["kind"], job["credential"], job["source"]["action"]) == (
        "poll", "main", "scheduled_events",
    )  # fmt: skip
    records = [{"uri": "https://api.calendly.com/scheduled_events/E1"}]
    answer = {"ok": True, "records": records, "cursor": {"since": "2026-01-01"}}
    plant_api.post(f"{BASE}jobs/{job['id']}/result", answer, format="json")
    polling.poll(acme.pk, deployment.pk)
    (again,) = plant_api.get(f"{BASE}jobs").json()["jobs"]
    assert again["cursor"] == {"since": "2026-01-01"}
    plant_api.post(f"{BASE}jobs/{again['id']}/result", {**answer, "cursor": {}}, format="json")
    assert TriggerEvent.objects.for_tenant(acme).filter(deployment=deployment).count() == 1


def test_moving_a_flow_to_a_group_checks_its_definition_there(acme, owner, plant):
    from tests.factories import make_credential, make_processflow

    flow = make_processflow(acme, make_credential(acme))
    with pytest.raises(ValidationError) as refused:
        services.update_processflow(
            acme, actor=owner_of(acme), processflow_id=flow.pk, agent_group=plant.agent.group_id
        )
    assert "name the credential has on the agent" in str(refused.value)
    flow.refresh_from_db()
    assert flow.agent_group is None
    assert every(AgentGroup).count() == 1
    assert not every(Deployment).exists()
