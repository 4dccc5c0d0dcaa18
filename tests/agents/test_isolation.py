"""An agent sees only its organization's work for its own group: another organization's
agent, or an agent of another group, gets 404 for every run and job endpoint and changes
nothing; each route of the transport is listed here so a new one cannot be forgotten."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.agents.models import AgentJob
from portal.processflows import registration
from portal.processflows.models import Deployment, Run, StepRun
from tests.agents.conftest import agent_client
from tests.factories import make_deployment, make_event, make_run, register_agent
from tests.routes import iter_routes

#: Every transport route naming an object, and how to name Acme's.
OBJECT_ROUTES = {
    "api:agent-run-report": "run_id",
    "api:agent-run-lease": "run_id",
    "api:agent-job-result": "job_id",
}
#: Transport routes naming nothing: the agent's own heartbeat and work.
OWN_ROUTES = {"api:agent-register", "api:agent-heartbeat", "api:agent-jobs"}


def test_every_transport_route_is_covered_here():
    transport = {r.name for r in iter_routes() if r.pattern.startswith("api/v1/agent/")}
    assert transport == set(OBJECT_ROUTES) | OWN_ROUTES


@pytest.fixture
def acme_work(acme, plant, group_flow):
    """A run of Acme's group leased to Plant A, and a subscribe job of its group."""
    deployment = make_deployment(group_flow, agent_group=group_flow.agent_group)
    run = make_run(make_event(deployment))
    registration.register(deployment)
    job = AgentJob.objects.for_tenant(acme).get(deployment=deployment)
    lease = agent_client(plant.secret).get("/api/v1/agent/jobs").json()["jobs"]
    leases = {j["id"]: j.get("run", {}).get("lease") for j in lease}
    return {"run_id": run.pk, "job_id": job.wire_id, "lease": leases[f"run:{run.pk}"]}


def _snapshot(acme):
    return {
        "runs": sorted(Run.objects.for_tenant(acme).values_list("pk", "status", "lease_owner")),
        "steps": StepRun.objects.filter(run__organization=acme).count(),
        "jobs": sorted(AgentJob.objects.for_tenant(acme).values_list("pk", "done_at")),
        "deployments": sorted(
            Deployment.objects.for_tenant(acme).values_list("pk", "registration_state")
        ),
    }


def _body(acme_work):
    return {
        "lease": acme_work["lease"],
        "status": "succeeded",
        "ok": True,
        "subscription": "https://example.test/sub/1",
        "steps": [{"position": 0, "name": "document", "status": "succeeded"}],
        "finish": {"status": "succeeded"},
    }


@pytest.mark.parametrize("route", sorted(OBJECT_ROUTES))
def test_another_organizations_agent_gets_404_for_every_run_and_job_endpoint(
    route, acme, acme_work, globex, outsider
):
    intruder = agent_client(register_agent(globex, name="Intruder").secret)
    url = reverse(route, kwargs={OBJECT_ROUTES[route]: acme_work[OBJECT_ROUTES[route]]})
    before = _snapshot(acme)
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(intruder, method)(url, _body(acme_work), format="json")
        assert response.status_code in (404, 405), f"{method} {url} -> {response.status_code}"
    assert intruder.post(url, _body(acme_work), format="json").status_code == 404
    assert _snapshot(acme) == before


@pytest.mark.parametrize("route", sorted(OBJECT_ROUTES))
def test_an_agent_of_another_group_gets_404_too(route, acme, acme_work):
    stranger = agent_client(register_agent(acme, name="Plant B").secret)
    url = reverse(route, kwargs={OBJECT_ROUTES[route]: acme_work[OBJECT_ROUTES[route]]})
    before = _snapshot(acme)
    assert stranger.post(url, _body(acme_work), format="json").status_code == 404
    assert _snapshot(acme) == before


def test_another_organizations_agent_is_handed_none_of_its_work(acme_work, globex, outsider, acme):
    Run.objects.for_tenant(acme).update(lease_owner="", lease_expires_at=None, status="queued")
    AgentJob.objects.for_tenant(acme).update(lease_expires_at=None)
    intruder = agent_client(register_agent(globex, name="Intruder").secret)
    assert intruder.get("/api/v1/agent/jobs").json() == {"jobs": []}


@pytest.mark.parametrize(
    "path",
    [
        "jobs/abc/result", "jobs/poll:1/result", "jobs/poll:x:1/result",
        "jobs/poll:1:99999999999999999999/result", "jobs/%E2%91%A0:1:1/result",
        "runs/abc/report", "runs/99999999999999999999/report", "runs/-1/lease",
    ],
)  # fmt: skip
def test_a_malformed_run_or_job_id_is_404_never_500(path, plant_api):
    response = plant_api.post(f"/api/v1/agent/{path}", {"ok": True, "lease": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("route", sorted(OBJECT_ROUTES))
def test_another_organizations_agent_gets_404_even_for_a_malformed_body(
    route, acme_work, globex, outsider
):
    intruder = agent_client(register_agent(globex, name="Intruder").secret)
    url = reverse(route, kwargs={OBJECT_ROUTES[route]: acme_work[OBJECT_ROUTES[route]]})
    body = {"steps": 7, "finish": {"status": "nonsense"}}
    assert intruder.post(url, body, format="json").status_code == 404
