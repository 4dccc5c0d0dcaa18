"""The API of issue 12: the definition published as a typed JSON Schema, run now for
polling flows, executing one action with a credential (Test step's path), and
Idempotency-Key on creates. Responses are checked against the published OpenAPI document."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from django.test import Client

from connectors.calendly.sandbox import seed
from portal.processflows import services
from portal.processflows.models import Processflow, Run
from portal.tenancy.models import IdempotencyRecord
from portal.vault.models import CredentialEvent
from tests.connectors.conftest import calendly_sandbox, calendly_sandbox_session  # noqa: F401
from tests.factories import every, make_credential, make_processflow, owner_of

BASE = "/api/v1/organizations/acme"


@pytest.fixture
def schema(db):
    return yaml.safe_load(Client().get("/api/schema/").content)


@pytest.fixture
def member_api(api, acme, cast):
    return api(cast["member"], acme)


@pytest.fixture
def credential(acme):
    return make_credential(acme)


def definition(credential) -> dict:
    return {
        "trigger": {
            "type": "webhook",
            "application": "calendly",
            "credential": credential.pk,
            "events": ["invitee.created"],
        },
        "steps": [{"name": "doc", "type": "map", "mapping": {"e": "{{ trigger.payload.email }}"}}],
    }


def resolved(schema: dict, node):
    """``node`` with its $refs into ``components`` replaced (for jsonschema)."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            return resolved(schema, schema["components"]["schemas"][name])
        return {k: resolved(schema, v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolved(schema, v) for v in node]
    return node


def response_schema(schema, path: str, method: str, status: int) -> dict:
    content = schema["paths"][path][method]["responses"][str(status)]["content"]
    return resolved(schema, content["application/json"]["schema"])


def test_the_definition_is_published_as_a_typed_json_schema(schema):
    definition_schema = schema["components"]["schemas"]["ProcessflowRequest"]["properties"][
        "definition"
    ]

    assert definition_schema["title"] == "ProcessflowDefinition"
    assert definition_schema["required"] == ["trigger", "steps"]
    triggers = [t["title"] for t in definition_schema["properties"]["trigger"]["oneOf"]]
    assert triggers == ["Webhook trigger", "Polling trigger"]
    steps = definition_schema["properties"]["steps"]["items"]["oneOf"]
    assert [s["title"] for s in steps] == ["Action step", "Map step"]


def test_a_definition_the_api_accepts_fits_the_published_schema(schema, credential):
    published = schema["components"]["schemas"]["ProcessflowRequest"]["properties"]["definition"]
    published = {**published, "nullable": None}
    checker = jsonschema.validators.validator_for(published)(published)
    assert [error.message for error in checker.iter_errors(definition(credential))] == []


def test_the_new_endpoints_are_in_the_schema(schema):
    paths = schema["paths"]
    assert "post" in paths["/api/v1/organizations/{org}/processflows/{id}/run/"]
    execute = "/api/v1/organizations/{org}/applications/{application}/actions/{action}/execute/"
    assert "post" in paths[execute]


def test_run_now_queues_a_poll_of_a_deployed_polling_flow(member_api, acme, schema):
    flow = make_processflow(
        acme,
        None,
        name="Tick",
        definition={
            "trigger": {"type": "polling", "schedule": {"once": True}, "source": None},
            "steps": [{"name": "doc", "type": "map", "mapping": {"at": "{{ trigger.tick }}"}}],
        },
    )
    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)

    response = member_api.post(f"{BASE}/processflows/{flow.pk}/run/")

    assert response.status_code == 202, response.content
    assert response.json()["deployment"] == deployment.pk
    jsonschema.validate(
        response.json(),
        response_schema(schema, "/api/v1/organizations/{org}/processflows/{id}/run/", "post", 202),
    )


def test_run_now_refuses_a_triggered_flow(member_api, acme, credential):
    flow = make_processflow(acme, credential)

    response = member_api.post(f"{BASE}/processflows/{flow.pk}/run/")

    assert response.status_code == 400
    assert "Only polling processflows run on demand" in response.content.decode()


def test_execute_runs_one_action_with_a_credential_and_creates_no_run(
    member_api,
    credential,
    schema,
    monkeypatch,
    calendly_sandbox,  # noqa: F811
):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    path = f"{BASE}/applications/calendly/actions/scheduled_events/execute/"

    response = member_api.post(
        path, {"credential": credential.pk, "filters": [["count", "2"]]}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True
    assert body["status"] == 200
    assert len(body["data"]["collection"]) >= 1
    assert ["count", "2"] in body["request"]["query"]
    assert not every(Run).exists()
    assert every(CredentialEvent).filter(action="used", detail__step_action="scheduled_events")
    assert seed.OWNER_TOKEN not in response.content.decode()
    jsonschema.validate(
        body,
        response_schema(
            schema,
            "/api/v1/organizations/{org}/applications/{application}/actions/{action}/execute/",
            "post",
            200,
        ),
    )


def test_execute_of_an_unknown_action_is_not_found_naming_it(member_api, credential):
    response = member_api.post(
        f"{BASE}/applications/calendly/actions/nope/execute/",
        {"credential": credential.pk},
        format="json",
    )

    # The URL names the action: one that does not exist is a missing resource.
    assert response.status_code == 404
    assert "Calendly has no action 'nope'" in response.content.decode()


def test_execute_with_another_organizations_credential_is_not_found(member_api, globex, outsider):
    theirs = make_credential(globex, name="Theirs")

    response = member_api.post(
        f"{BASE}/applications/calendly/actions/users/me/execute/",
        {"credential": theirs.pk},
        format="json",
    )

    assert response.status_code == 404


def test_a_viewer_cannot_execute(api, acme, cast, credential):
    response = api(cast["viewer"], acme).post(
        f"{BASE}/applications/calendly/actions/users/me/execute/",
        {"credential": credential.pk},
        format="json",
    )

    assert response.status_code == 403


def test_a_create_repeated_with_the_same_idempotency_key_creates_once(member_api, credential):
    body = {"name": "Bookings", "definition": definition(credential)}

    first = member_api.post(
        f"{BASE}/processflows/", body, format="json", HTTP_IDEMPOTENCY_KEY="abc-1"
    )
    again = member_api.post(
        f"{BASE}/processflows/", body, format="json", HTTP_IDEMPOTENCY_KEY="abc-1"
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == json.loads(first.content)
    assert again["Idempotent-Replayed"] == "true"
    assert every(Processflow).count() == 1


def test_a_key_reused_for_another_request_is_refused(member_api, credential):
    body = {"name": "Bookings", "definition": definition(credential)}
    member_api.post(f"{BASE}/processflows/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")

    other = member_api.post(
        f"{BASE}/processflows/", {**body, "name": "Other"}, format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )  # fmt: skip

    assert other.status_code == 422
    assert every(Processflow).count() == 1


def test_a_refused_create_is_not_kept_so_the_key_can_be_retried(member_api, credential):
    body = {"name": "", "definition": definition(credential)}
    refused = member_api.post(
        f"{BASE}/processflows/", body, format="json", HTTP_IDEMPOTENCY_KEY="r"
    )
    fixed = member_api.post(f"{BASE}/processflows/", body, format="json", HTTP_IDEMPOTENCY_KEY="r")

    assert refused.status_code == fixed.status_code == 400
    assert not every(IdempotencyRecord).exists()


def test_keys_are_kept_per_organization(api, acme, globex, cast, outsider, credential):
    theirs = make_credential(globex, name="Theirs")
    ours = api(cast["member"], acme).post(
        f"{BASE}/processflows/", {"name": "A", "definition": definition(credential)},
        format="json", HTTP_IDEMPOTENCY_KEY="same",
    )  # fmt: skip
    other = api(outsider, globex).post(
        "/api/v1/organizations/globex/processflows/",
        {"name": "A", "definition": definition(theirs)},
        format="json",
        HTTP_IDEMPOTENCY_KEY="same",
    )

    assert ours.status_code == other.status_code == 201
    assert every(Processflow).count() == 2


def test_a_replayed_token_create_never_shows_the_secret_again(client, acme, cast):
    client.force_login(cast["member"])
    url = f"{BASE}/tokens/"
    first = client.post(
        url, {"name": "ci", "expires_in_days": 5}, content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="t",
    )  # fmt: skip
    again = client.post(
        url, {"name": "ci", "expires_in_days": 5}, content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="t",
    )  # fmt: skip

    assert first.status_code == again.status_code == 201
    assert first.json()["token"]
    assert again.json()["token"] is None
    assert first.json()["token"] not in json.dumps(
        list(every(IdempotencyRecord).values()), default=str
    )
