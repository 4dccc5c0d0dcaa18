"""Runs on an agent group look like Cloud runs, plus which agent ran them; a run waiting
for a group none of whose agents is online says so."""

from __future__ import annotations

from django.utils import timezone

from portal.agents.models import Agent
from tests.agents.conftest import BASE
from tests.factories import make_deployment, make_event, make_run


def group_run(group_flow):
    deployment = make_deployment(group_flow, agent_group=group_flow.agent_group)
    return make_run(make_event(deployment))


def test_a_run_page_and_the_api_say_which_agent_ran_it(
    login, api, cast, acme, plant_api, group_flow
):
    run = group_run(group_flow)
    plant_api.get(f"{BASE}jobs")
    html = login(cast["viewer"]).get(f"/o/acme/runs/{run.pk}/").content.decode()
    assert "On-premise agent Plant A (group Plant A)" in html
    body = api(cast["viewer"], acme).get(f"/api/v1/organizations/acme/runs/{run.pk}/").json()
    assert body["agent"] == {"id": run.deployment.agent_group.agents.get().pk, "name": "Plant A"}
    listing = login(cast["viewer"]).get("/o/acme/runs/").content.decode()
    assert "agent Plant A" in listing


def test_a_run_waiting_for_an_offline_group_says_since_when(
    login, api, cast, acme, plant, group_flow
):
    seen = timezone.now() - timezone.timedelta(minutes=10)
    Agent.objects.for_tenant(acme).update(last_seen_at=seen)
    run = group_run(group_flow)
    expected = f"Waiting for agent group Plant A, offline since {seen:%Y-%m-%d %H:%M} UTC."
    html = login(cast["viewer"]).get(f"/o/acme/runs/{run.pk}/").content.decode()
    assert expected in html
    body = api(cast["viewer"], acme).get(f"/api/v1/organizations/acme/runs/{run.pk}/").json()
    assert body["waiting_for"] == expected


def test_a_run_waiting_for_an_online_group_says_nothing_more(api, cast, acme, plant, group_flow):
    run = group_run(group_flow)
    body = api(cast["viewer"], acme).get(f"/api/v1/organizations/acme/runs/{run.pk}/").json()
    assert body["waiting_for"] == ""
    assert body["agent"] is None


def test_the_dashboard_lists_a_deployment_whose_agent_group_is_offline(
    login, cast, acme, owner, plant, group_flow
):
    from portal.processflows import services
    from tests.factories import owner_of

    services.deploy(acme, actor=owner_of(acme), processflow_id=group_flow.pk)
    Agent.objects.for_tenant(acme).update(
        last_seen_at=timezone.now() - timezone.timedelta(minutes=5)
    )
    html = login(cast["viewer"]).get("/o/acme/").content.decode()
    assert "Its runs wait for agent group Plant A, offline since" in html
