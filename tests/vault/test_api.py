"""The vault's API: applications from the connector registry, and credentials whose secrets
are write-only (responses show ``••••`` and the last four characters), with the audit history,
errors in the common format and the same permissions as the pages.

Another organization's credential answering 404 on every route is proven for all routes at
once by tests/tenancy/test_isolation.py."""

from __future__ import annotations

import pytest
import yaml
from rest_framework.test import APIClient

from connectors.calendly.sandbox import seed
from flows.definition import installed_applications
from portal.vault.keys import open_secrets
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from tests.factories import every, make_credential
from tests.vault.conftest import TOKEN_FIELD

# Every installed application, as error messages list them (by display name).
INSTALLED = ", ".join(app.name for app in installed_applications())

TOKEN = seed.OWNER_TOKEN
MASKED = "••••" + TOKEN[-4:]
CREDENTIALS = "/api/v1/organizations/acme/credentials/"


def detail_url(credential) -> str:
    return f"{CREDENTIALS}{credential.pk}/"


def error_of(response, status: int) -> dict:
    """The body of an error answer, checked to be in the common format."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "fields"}
    assert body["error"]["status"] == status
    return body["error"]


def create(client, **body):
    body.setdefault("application", "calendly")
    body.setdefault("name", "Sales team")
    body.setdefault("secrets", {TOKEN_FIELD: TOKEN})
    return client.post(CREDENTIALS, body, format="json")


@pytest.fixture
def owner_api(api, acme, owner):
    return api(owner, acme)


@pytest.fixture
def viewer_api(api, acme, viewer):
    return api(viewer, acme)


# --- Applications ------------------------------------------------------------------------------


def test_the_api_lists_the_installed_applications(owner_api):
    response = owner_api.get("/api/v1/applications/")

    assert response.status_code == 200
    names = [app["name"] for app in response.json()]
    assert {"calendly", "github", "rest"} <= set(names)  # and any other installed one
    assert len(names) == len(set(names))


def test_an_application_lists_its_actions_with_their_json_schemas(owner_api):
    apps = owner_api.get("/api/v1/applications/").json()
    calendly = next(app for app in apps if app["name"] == "calendly")

    actions = {action["name"]: action for action in calendly["actions"]}
    assert {"users/me", "scheduled_events", "event_types"} <= set(actions)
    scheduled = actions["scheduled_events"]
    assert (scheduled["method"], scheduled["path"]) == ("GET", "/scheduled_events")
    assert scheduled["input_schema"]["type"] == "object"
    assert "user" in scheduled["input_schema"]["properties"]
    assert scheduled["output_schema"]


def test_an_application_lists_its_credential_fields_and_webhook_events(owner_api):
    calendly = owner_api.get("/api/v1/applications/calendly/").json()

    (rest,) = calendly["credential_types"]
    assert rest["name"] == "rest"
    assert [(f["name"], f["secret"], f["required"]) for f in rest["fields"]] == [
        (TOKEN_FIELD, True, True)
    ]
    assert "invitee.created" in calendly["webhooks"]["events"]
    assert [f["name"] for f in calendly["resource_functions"]] == [
        "GetOrganizationUrl",
        "GetUserUrl",
    ]


def test_an_unknown_application_is_a_404_naming_the_installed_ones(owner_api):
    error = error_of(owner_api.get("/api/v1/applications/calendlyy/"), 404)

    assert error["message"] == f"Unknown application 'calendlyy'; installed: {INSTALLED}."


def test_applications_are_listed_only_to_authenticated_callers(db):
    assert error_of(APIClient().get("/api/v1/applications/"), 401)["code"] == "not_authenticated"


# --- Credentials: secrets are write-only -------------------------------------------------------


def test_creating_a_credential_answers_with_only_the_masked_secret(acme, owner_api):
    response = create(owner_api)

    assert response.status_code == 201
    assert TOKEN not in response.content.decode()
    body = response.json()
    assert body["secrets"] == {TOKEN_FIELD: MASKED}
    assert (body["application"], body["type"], body["name"], body["status"]) == (
        "calendly",
        "rest",
        "Sales team",
        "unvalidated",
    )
    stored = Credential.objects.for_tenant(acme).select_related("data_key").get(pk=body["id"])
    assert open_secrets(stored) == {TOKEN_FIELD: TOKEN}


def test_listing_credentials_shows_masked_secrets_only(acme, owner_api):
    make_credential(acme, name="Sales team")
    make_credential(acme, name="Support", token=seed.ADMIN_TOKEN)

    response = owner_api.get(CREDENTIALS)

    assert response.status_code == 200
    text = response.content.decode()
    assert TOKEN not in text
    assert seed.ADMIN_TOKEN not in text
    results = response.json()["results"]
    assert [(c["name"], c["secrets"]) for c in results] == [
        ("Sales team", {TOKEN_FIELD: MASKED}),
        ("Support", {TOKEN_FIELD: "••••" + seed.ADMIN_TOKEN[-4:]}),
    ]


def test_listing_credentials_can_be_narrowed_to_one_application(acme, owner_api):
    make_credential(acme)
    make_credential(
        acme,
        name="Forwarder",
        application="rest",
        fields={"base_url": "https://api.example.com", "auth_type": "none"},
    )

    results = owner_api.get(CREDENTIALS, {"application": "rest"}).json()["results"]

    assert [c["name"] for c in results] == ["Forwarder"]


def test_plain_fields_are_readable_while_secret_ones_stay_masked(owner_api):
    response = create(
        owner_api,
        application="rest",
        name="Forwarder",
        fields={"base_url": "https://api.example.com/v1", "auth_type": "bearer"},
        secrets={"token": "rest-secret-0123456789"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["fields"]["base_url"] == "https://api.example.com/v1"
    assert body["fields"]["auth_type"] == "bearer"
    assert body["secrets"] == {"token": "••••6789"}
    assert "rest-secret-0123456789" not in response.content.decode()


def test_retrieving_a_credential_shows_the_masked_secret(acme, owner_api):
    credential = make_credential(acme)

    response = owner_api.get(detail_url(credential))

    assert response.status_code == 200
    assert TOKEN not in response.content.decode()
    assert response.json()["secrets"] == {TOKEN_FIELD: MASKED}


def test_a_viewer_may_read_credentials(acme, viewer_api):
    credential = make_credential(acme)

    assert viewer_api.get(CREDENTIALS).status_code == 200
    assert viewer_api.get(detail_url(credential)).json()["secrets"] == {TOKEN_FIELD: MASKED}


def test_patch_renames_a_credential(acme, owner_api):
    credential = make_credential(acme)

    response = owner_api.patch(detail_url(credential), {"name": "Sales (EMEA)"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Sales (EMEA)"
    assert every(Credential).get(pk=credential.pk).name == "Sales (EMEA)"


def test_patch_replaces_the_secret_and_answers_with_the_new_mask(acme, owner_api):
    credential = make_credential(acme)
    every(Credential).filter(pk=credential.pk).update(status=CredentialStatus.VALID)

    response = owner_api.patch(
        detail_url(credential), {"secrets": {TOKEN_FIELD: seed.ADMIN_TOKEN}}, format="json"
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert seed.ADMIN_TOKEN not in text
    assert TOKEN not in text
    body = response.json()
    assert body["secrets"] == {TOKEN_FIELD: "••••" + seed.ADMIN_TOKEN[-4:]}
    assert body["status"] == "unvalidated"
    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert open_secrets(stored) == {TOKEN_FIELD: seed.ADMIN_TOKEN}


def test_delete_removes_the_credential_and_keeps_its_history(acme, owner_api):
    credential = make_credential(acme)

    response = owner_api.delete(detail_url(credential))

    assert response.status_code == 204
    assert not every(Credential).filter(pk=credential.pk).exists()
    assert list(
        CredentialEvent.objects.for_tenant(acme)
        .order_by("created_at", "pk")
        .values_list("action", "credential_name")
    ) == [("created", "Sales team"), ("deleted", "Sales team")]
    error_of(owner_api.get(detail_url(credential)), 404)


def test_the_events_endpoint_lists_a_credentials_audit_history(acme, owner, owner_api):
    response = create(owner_api)
    credential_id = response.json()["id"]
    owner_api.patch(
        f"{CREDENTIALS}{credential_id}/",
        {"name": "Renamed", "secrets": {TOKEN_FIELD: seed.ADMIN_TOKEN}},
        format="json",
    )

    events = owner_api.get(f"{CREDENTIALS}{credential_id}/events/")

    assert events.status_code == 200
    results = events.json()["results"]
    assert [(e["action"], e["actor"]) for e in results] == [
        ("updated", owner.email),
        ("secret_replaced", owner.email),
        ("created", owner.email),
    ]
    assert results[0]["detail"] == {"changed": ["name"]}
    assert results[1]["detail"] == {"fields": [TOKEN_FIELD]}
    assert all(e["created_at"] and e["credential_name"] for e in results)
    text = events.content.decode()
    assert TOKEN not in text
    assert seed.ADMIN_TOKEN not in text


# --- Errors in the common format ---------------------------------------------------------------


def test_an_empty_token_is_a_400_naming_the_field(owner_api):
    error = error_of(create(owner_api, secrets={TOKEN_FIELD: "   "}), 400)

    assert error["code"] == "invalid"
    assert error["fields"] == {TOKEN_FIELD: ["The Personal Access Token is empty."]}
    assert not every(Credential).exists()


def test_an_unknown_application_is_a_400_on_create(owner_api):
    error = error_of(create(owner_api, application="nope"), 400)

    assert error["fields"] == {
        "application": [f"Unknown application 'nope'; installed: {INSTALLED}."]
    }


def test_a_duplicate_name_is_a_400_on_create(acme, owner_api):
    make_credential(acme, name="Sales team")

    error = error_of(create(owner_api, name="sales team"), 400)

    assert list(error["fields"]) == ["name"]
    assert "already exists" in error["fields"]["name"][0]
    assert every(Credential).count() == 1


def test_a_secret_sent_among_the_fields_is_a_400_that_does_not_echo_it(owner_api):
    response = create(owner_api, fields={TOKEN_FIELD: TOKEN}, secrets={})

    error = error_of(response, 400)
    assert error["fields"] == {
        TOKEN_FIELD: ["The Personal Access Token is secret: send it in secrets, not in fields."]
    }
    assert TOKEN not in response.content.decode()
    assert not every(Credential).exists()


def test_a_missing_name_is_a_400(owner_api):
    error = error_of(owner_api.post(CREDENTIALS, {"application": "calendly"}, format="json"), 400)

    assert "name" in error["fields"]


def test_secrets_that_are_not_an_object_are_a_400(owner_api):
    error = error_of(create(owner_api, secrets=TOKEN), 400)

    assert "secrets" in error["fields"]
    assert TOKEN not in str(error)


def test_a_bad_replacement_secret_is_a_400_and_changes_nothing(acme, owner_api):
    credential = make_credential(acme)

    error = error_of(
        owner_api.patch(detail_url(credential), {"secrets": {TOKEN_FIELD: "tök"}}, format="json"),
        400,
    )

    assert TOKEN_FIELD in error["fields"]
    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert open_secrets(stored) == {TOKEN_FIELD: TOKEN}


def test_an_unknown_credential_is_a_404_in_the_common_format(owner_api, acme):
    assert error_of(owner_api.get(f"{CREDENTIALS}999999/"), 404)["code"] == "not_found"


# --- Viewers may not write ---------------------------------------------------------------------


def test_a_viewer_cannot_create_a_credential_through_the_api(viewer_api):
    error = error_of(create(viewer_api), 403)

    assert error["message"] == (
        "Your role (viewer) does not allow you to make changes in this organization."
    )
    assert not every(Credential).exists()


def test_a_viewer_cannot_patch_a_credential_through_the_api(acme, viewer_api):
    credential = make_credential(acme)

    error_of(viewer_api.patch(detail_url(credential), {"name": "Mine"}, format="json"), 403)

    assert every(Credential).get(pk=credential.pk).name == "Sales team"


def test_a_viewer_cannot_delete_a_credential_through_the_api(acme, viewer_api):
    credential = make_credential(acme)

    error_of(viewer_api.delete(detail_url(credential)), 403)

    assert every(Credential).filter(pk=credential.pk).exists()


def test_a_viewer_cannot_validate_through_the_api(acme, viewer_api):
    credential = make_credential(acme)

    error_of(viewer_api.post(f"{detail_url(credential)}validate/"), 403)
    error_of(
        viewer_api.post(
            f"{CREDENTIALS}check/",
            {"application": "calendly", "secrets": {TOKEN_FIELD: TOKEN}},
            format="json",
        ),
        403,
    )

    assert every(Credential).get(pk=credential.pk).checked_at is None


# --- The API describes itself ------------------------------------------------------------------


def test_the_openapi_schema_describes_the_vault_endpoints(client, db):
    schema = yaml.safe_load(client.get("/api/schema/").content)

    paths = schema["paths"]
    assert {
        "/api/v1/applications/",
        "/api/v1/applications/{name}/",
        "/api/v1/organizations/{org}/credentials/",
        "/api/v1/organizations/{org}/credentials/{id}/",
        "/api/v1/organizations/{org}/credentials/{id}/validate/",
        "/api/v1/organizations/{org}/credentials/{id}/events/",
        "/api/v1/organizations/{org}/credentials/check/",
    } <= set(paths)
    item = paths["/api/v1/organizations/{org}/credentials/{id}/"]
    assert {"get", "patch", "delete"} <= set(item)
    assert "post" in paths["/api/v1/organizations/{org}/credentials/"]
