"""The processflow API under /api/v1/organizations/<org>/: processflows (CRUD, deploy,
undeploy, deployment), runs (filters, detail, replay) and events; tenant-scoped, described
in the OpenAPI schema, errors in the common format."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from django.utils import timezone

from connectors.calendly.sandbox import seed
from portal.processflows import tasks
from portal.processflows.models import Processflow, Run, RunStatus, StepRun, TriggerEvent
from tests.factories import (
    every,
    make_credential,
    make_deployment,
    make_event,
    make_processflow,
    make_run,
    webhook_definition,
)

BASE = "/api/v1/organizations/acme"


@pytest.fixture
def sandbox(monkeypatch, calendly_sandbox, settings, destination):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = destination.url
    return calendly_sandbox


@pytest.fixture
def credential(acme):
    return make_credential(acme)


@pytest.fixture
def flow(acme, owner, credential):
    return make_processflow(acme, credential)


@pytest.fixture
def member_api(api, acme, cast):
    return api(cast["member"], acme)


@pytest.fixture
def viewer_api(api, acme, cast):
    return api(cast["viewer"], acme)


def assert_error(response, status) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["message"]
    return body["error"]


# --- Processflows ---------------------------------------------------------------------------


def test_creating_a_flow_answers_201_with_version_1_and_its_url(member_api, credential):
    response = member_api.post(
        f"{BASE}/processflows/",
        {"name": "Bookings", "definition": webhook_definition(credential)},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    flow = every(Processflow).get(pk=body["id"])
    assert body["name"] == "Bookings"
    assert body["trigger_type"] == "webhook"
    assert body["latest_version"]["number"] == 1
    assert body["latest_version"]["definition"]["trigger"]["registration"] == "automatic"
    assert body["processflow_url"].endswith(f"/hooks/{flow.hook_id}/")
    assert body["deployment"] is None
    assert "definition" not in body


def test_a_bad_definition_answers_400_naming_where(member_api, credential):
    definition = webhook_definition(
        credential,
        steps=[{"name": "document", "type": "map", "mapping": {"x": "{{ steps.nope.x }}"}}],
    )
    response = member_api.post(
        f"{BASE}/processflows/", {"name": "Bad", "definition": definition}, format="json"
    )
    error = assert_error(response, 400)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["steps[0].mapping.x"]
    assert "refers to no earlier step" in error["fields"]["steps[0].mapping.x"][0]
    assert not every(Processflow).exists()


def test_a_missing_name_answers_400(member_api, credential):
    error = assert_error(
        member_api.post(
            f"{BASE}/processflows/", {"definition": webhook_definition(credential)}, format="json"
        ),
        400,
    )
    assert "name" in error["fields"]


def test_a_duplicate_name_answers_400(member_api, credential, flow):
    error = assert_error(
        member_api.post(
            f"{BASE}/processflows/",
            {"name": "Bookings", "definition": webhook_definition(credential)},
            format="json",
        ),
        400,
    )
    assert error["fields"] == {"name": ["A processflow named 'Bookings' exists already."]}


def test_listing_and_reading_flows(member_api, flow):
    listing = member_api.get(f"{BASE}/processflows/")
    assert listing.status_code == 200
    assert [f["name"] for f in listing.json()["results"]] == ["Bookings"]
    detail = member_api.get(f"{BASE}/processflows/{flow.pk}/")
    assert detail.status_code == 200
    assert detail.json()["latest_version"]["number"] == 1


def test_patching_the_definition_makes_a_new_version(member_api, credential, flow):
    definition = webhook_definition(credential)
    definition["trigger"]["events"] = ["invitee.canceled"]
    response = member_api.patch(
        f"{BASE}/processflows/{flow.pk}/", {"definition": definition}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["latest_version"]["number"] == 2
    assert response.json()["latest_version"]["definition"]["trigger"]["events"] == [
        "invitee.canceled"
    ]


def test_changing_the_trigger_type_answers_400(member_api, flow):
    polling = {
        "trigger": {"type": "polling", "schedule": {"once": True}},
        "steps": [{"name": "document", "type": "map", "mapping": {"a": "b"}}],
    }
    error = assert_error(
        member_api.patch(f"{BASE}/processflows/{flow.pk}/", {"definition": polling}, format="json"),
        400,
    )
    assert "trigger.type" in error["fields"]


def test_deleting_an_undeployed_flow(member_api, flow):
    assert member_api.delete(f"{BASE}/processflows/{flow.pk}/").status_code == 204
    assert not every(Processflow).exists()


def test_deleting_a_deployed_flow_answers_400(sandbox, member_api, flow):
    assert member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/").status_code == 201
    error = assert_error(member_api.delete(f"{BASE}/processflows/{flow.pk}/"), 400)
    assert error["message"] == "Undeploy the processflow before deleting it."


def test_a_viewer_reads_but_cannot_write(viewer_api, credential, flow):
    assert viewer_api.get(f"{BASE}/processflows/").status_code == 200
    for response in (
        viewer_api.post(
            f"{BASE}/processflows/",
            {"name": "X", "definition": webhook_definition(credential)},
            format="json",
        ),
        viewer_api.patch(f"{BASE}/processflows/{flow.pk}/", {"name": "Y"}, format="json"),
        viewer_api.delete(f"{BASE}/processflows/{flow.pk}/"),
        viewer_api.post(f"{BASE}/processflows/{flow.pk}/deploy/"),
        viewer_api.post(f"{BASE}/processflows/{flow.pk}/undeploy/"),
    ):
        assert "viewer" in assert_error(response, 403)["message"]
    flow.refresh_from_db()
    assert flow.name == "Bookings"
    assert not flow.deployments.exists()


# --- Deploying ------------------------------------------------------------------------------


def test_deploying_answers_201_with_the_pending_registration(sandbox, member_api, flow):
    response = member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/")
    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    assert body["state"] == "active"
    assert body["agent"] == "cloud"
    assert body["registration_state"] == "pending"


def test_the_deployment_shows_the_registration_state(sandbox, member_api, flow):
    deployment_id = member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/").json()["id"]
    tasks.register_subscription(flow.organization_id, deployment_id)
    body = member_api.get(f"{BASE}/processflows/{flow.pk}/deployment/").json()
    assert body["registration_state"] == "active"
    assert body["subscription_uri"] == sandbox.subscriptions[0]["uri"]
    assert body["registered_url"].endswith(f"/hooks/{flow.hook_id}/")
    assert member_api.get(f"{BASE}/processflows/{flow.pk}/").json()["deployment"]["id"] == (
        deployment_id
    )


def test_a_failed_registration_shows_the_apis_message(sandbox, acme, owner, member_api):
    free = make_credential(acme, name="Freelancer", token=seed.FREE_PLAN_TOKEN)
    flow = make_processflow(acme, free)
    deployment_id = member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/").json()["id"]
    tasks.register_subscription(flow.organization_id, deployment_id)
    body = member_api.get(f"{BASE}/processflows/{flow.pk}/deployment/").json()
    assert body["registration_state"] == "failed"
    assert "upgrade" in body["registration_message"].lower()


def test_deploying_with_an_invalid_credential_answers_400_naming_it(sandbox, member_api, flow):
    sandbox.revoke_token(seed.OWNER_TOKEN)
    error = assert_error(member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/"), 400)
    assert error["message"].startswith("Credential 'Sales team' (Calendly) is not valid:")
    assert seed.OWNER_TOKEN not in str(error)


def test_undeploying_answers_with_the_deployment_being_removed(sandbox, member_api, flow):
    member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/")
    response = member_api.post(f"{BASE}/processflows/{flow.pk}/undeploy/")
    assert response.status_code == 200
    assert response.json()["state"] == "undeployed"
    assert response.json()["registration_state"] == "removing"
    error = assert_error(member_api.post(f"{BASE}/processflows/{flow.pk}/undeploy/"), 400)
    assert error["message"] == "This processflow is not deployed."


def test_a_never_deployed_flow_has_no_deployment(member_api, flow):
    error = assert_error(member_api.get(f"{BASE}/processflows/{flow.pk}/deployment/"), 404)
    assert error["message"] == "This processflow has never been deployed."


def test_a_polling_deployment_shows_its_schedule(acme, owner, member_api):
    flow = make_processflow(
        acme,
        None,
        name="Ticker",
        definition={
            "trigger": {"type": "polling", "schedule": {"every_seconds": 600}},
            "steps": [{"name": "document", "type": "map", "mapping": {"at": "{{ trigger.tick }}"}}],
        },
    )
    body = member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/").json()
    assert body["registration_state"] == "none"
    assert body["schedule"] == {"every_seconds": 600}


# --- Runs -----------------------------------------------------------------------------------


@pytest.fixture
def history(acme, owner, credential, flow):
    """Three runs of Bookings (succeeded, failed, queued) and one of Cancellations."""
    other = make_processflow(acme, credential, name="Cancellations")
    deployment = make_deployment(flow)
    ok = make_run(make_event(deployment), status=RunStatus.SUCCEEDED)
    StepRun.objects.create(
        run=ok, position=0, name="document", status=RunStatus.SUCCEEDED, output={"email": "a@b"}
    )
    failed = make_run(make_event(deployment), status=RunStatus.FAILED, error="Step 'x': boom")
    queued = make_run(make_event(deployment), status=RunStatus.QUEUED)
    elsewhere = make_run(make_event(make_deployment(other)), status=RunStatus.FAILED)
    return {"ok": ok, "failed": failed, "queued": queued, "elsewhere": elsewhere, "other": other}


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {r["id"] for r in response.json()["results"]}


def test_runs_are_listed_newest_first(member_api, history):
    response = member_api.get(f"{BASE}/runs/")
    assert [r["id"] for r in response.json()["results"]] == [
        history[k].pk for k in ("elsewhere", "queued", "failed", "ok")
    ]


def test_runs_filter_by_status(member_api, history):
    assert ids(member_api.get(f"{BASE}/runs/?status=failed")) == {
        history["failed"].pk,
        history["elsewhere"].pk,
    }


def test_runs_filter_by_processflow(member_api, history, flow):
    assert ids(member_api.get(f"{BASE}/runs/?processflow={history['other'].pk}")) == {
        history["elsewhere"].pk
    }
    assert ids(member_api.get(f"{BASE}/runs/?processflow={flow.pk}&status=succeeded")) == {
        history["ok"].pk
    }


def test_runs_filter_by_time(member_api, history):
    every(Run).filter(pk=history["ok"].pk).update(created_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    until = (timezone.now() - timedelta(days=2)).isoformat()
    assert history["ok"].pk not in ids(member_api.get(f"{BASE}/runs/", {"since": since}))
    assert ids(member_api.get(f"{BASE}/runs/", {"until": until})) == {history["ok"].pk}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=exploded", "status"),
        ("since=yesterday", "since"),
        ("until=2025-13-01", "until"),
        ("processflow=bookings", "processflow"),
        ("since=2025-03-02T00:00:00Z&until=2025-03-01T00:00:00Z", "until"),
    ],
)
def test_bad_run_filters_answer_400(member_api, history, query, field):
    error = assert_error(member_api.get(f"{BASE}/runs/?{query}"), 400)
    assert list(error["fields"]) == [field]


def test_a_run_shows_its_steps(member_api, history):
    body = member_api.get(f"{BASE}/runs/{history['ok'].pk}/").json()
    assert body["status"] == "succeeded"
    assert body["version"] == 1
    assert [(s["name"], s["status"], s["output"]) for s in body["steps"]] == [
        ("document", "succeeded", {"email": "a@b"})
    ]


def test_a_failed_run_is_replayed(member_api, history):
    response = member_api.post(f"{BASE}/runs/{history['failed'].pk}/replay/")
    assert response.status_code == 201
    body = response.json()
    assert body["replay_of"] == history["failed"].pk
    assert body["status"] == "queued"


def test_replaying_a_run_that_did_not_fail_answers_400(member_api, history):
    error = assert_error(member_api.post(f"{BASE}/runs/{history['ok'].pk}/replay/"), 400)
    assert error["message"] == "Only failed runs can be replayed; this one is succeeded."


def test_a_viewer_cannot_replay(viewer_api, history):
    assert_error(viewer_api.post(f"{BASE}/runs/{history['failed'].pk}/replay/"), 403)
    assert every(Run).count() == 4


# --- Events ---------------------------------------------------------------------------------


def test_events_are_listed_and_read_with_their_body(member_api, flow):
    deployment = make_deployment(flow)
    event = make_event(deployment, {"event": "invitee.created", "payload": {"email": "a@b.c"}})
    listing = member_api.get(f"{BASE}/events/").json()["results"]
    assert [(e["id"], e["event_name"], e["signature_verified"]) for e in listing] == [
        (event.pk, "invitee.created", True)
    ]
    assert "body" not in listing[0]
    detail = member_api.get(f"{BASE}/events/{event.pk}/").json()
    assert detail["processflow"] == flow.pk
    assert '"email": "a@b.c"' in detail["body"]


def test_events_filter_by_processflow(acme, member_api, credential, flow):
    other = make_processflow(acme, credential, name="Other")
    make_event(make_deployment(flow))
    theirs = make_event(make_deployment(other))
    assert ids(member_api.get(f"{BASE}/events/?processflow={other.pk}")) == {theirs.pk}


def test_polled_records_have_no_signature(member_api, flow):
    make_event(make_deployment(flow), source=TriggerEvent.Source.POLL)
    [event] = member_api.get(f"{BASE}/events/").json()["results"]
    assert event["source"] == "poll"
    assert event["signature_verified"] is None


# --- Tenancy and the schema -----------------------------------------------------------------


def test_another_organizations_objects_are_not_found(api, globex, cast, flow, history):
    client = api(cast["outsider"], globex)
    event = history["failed"].event
    for path in (
        f"/api/v1/organizations/globex/processflows/{flow.pk}/",
        f"/api/v1/organizations/globex/runs/{history['failed'].pk}/",
        f"/api/v1/organizations/globex/events/{event.pk}/",
        f"/api/v1/organizations/globex/runs/?processflow={flow.pk}",
    ):
        assert_error(client.get(path), 404)
    assert_error(client.post(f"/api/v1/organizations/globex/processflows/{flow.pk}/deploy/"), 404)
    assert_error(
        client.post(f"/api/v1/organizations/globex/runs/{history['failed'].pk}/replay/"), 404
    )
    assert client.get("/api/v1/organizations/globex/runs/").json()["results"] == []
    assert client.get("/api/v1/organizations/globex/events/").json()["results"] == []
    # and Acme's URLs do not let them in either
    assert_error(client.get(f"{BASE}/processflows/"), 404)


def test_the_endpoints_are_in_the_openapi_schema(client, db):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = schema["paths"]
    prefix = "/api/v1/organizations/{org}"
    for path, methods in {
        "/processflows/": {"get", "post"},
        "/processflows/{id}/": {"get", "patch", "delete"},
        "/processflows/{id}/deploy/": {"post"},
        "/processflows/{id}/undeploy/": {"post"},
        "/processflows/{id}/deployment/": {"get"},
        "/runs/": {"get"},
        "/runs/{id}/": {"get"},
        "/runs/{id}/replay/": {"post"},
        "/events/": {"get"},
        "/events/{id}/": {"get"},
    }.items():
        assert methods <= set(paths[prefix + path]), path
    run_filters = {p["name"] for p in paths[f"{prefix}/runs/"]["get"]["parameters"]}
    assert {"status", "processflow", "since", "until"} <= run_filters


def test_no_response_reveals_the_signing_key(sandbox, member_api, flow):
    from portal.processflows.models import Deployment
    from portal.processflows.signing import signing_key

    deployment_id = member_api.post(f"{BASE}/processflows/{flow.pk}/deploy/").json()["id"]
    tasks.register_subscription(flow.organization_id, deployment_id)
    key = signing_key(every(Deployment).get(pk=deployment_id), purpose="a test")
    for path in (
        f"{BASE}/processflows/",
        f"{BASE}/processflows/{flow.pk}/",
        f"{BASE}/processflows/{flow.pk}/deployment/",
    ):
        response = member_api.get(path)
        assert response.status_code == 200
        assert key not in response.content.decode()
