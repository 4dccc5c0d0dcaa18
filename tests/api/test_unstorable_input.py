"""Input the database cannot store (a NUL character; in JSON also an unpaired surrogate) is
refused before it reaches the database: 400 naming the input (404 for a URL path), never a
500, and never intake's 503, which means "the database is unavailable, retry later"."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from portal.processflows.models import Processflow, RejectedDelivery, TriggerEvent
from portal.tenancy.models import Invitation
from portal.vault.models import Credential
from tests.api.test_errors import assert_error
from tests.factories import every, make_credential, make_processflow, webhook_definition
from tests.processflows.reliability.support import deploy_hook, signed
from tests.routes import iter_routes

BASE = "/api/v1/organizations/acme"

API_LISTS = sorted(
    (r for r in iter_routes() if r.is_api and (r.name.endswith("-list") or r.name == "api:me")),
    key=lambda r: r.name,
)


@pytest.fixture
def owner_api(api, acme, cast):
    return api(cast["owner"], acme)


def assert_refused(response, field: str) -> dict:
    error = assert_error(response, 400)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert "NUL" in error["message"]
    return error


# --- The API ------------------------------------------------------------------------------------


def test_a_nul_in_a_query_filter_is_refused_400_naming_the_parameter(owner_api, acme):
    make_credential(acme)

    response = owner_api.get(f"{BASE}/credentials/?application=%00")

    error = assert_refused(response, "application")
    assert "'application'" in error["message"]


@pytest.mark.parametrize("route", API_LISTS, ids=lambda r: r.name)
def test_a_nul_in_any_query_parameter_of_any_api_list_is_refused_400(route, owner_api):
    url = reverse(route.name, kwargs={"org": "acme"} if "org" in route.kwargs else {})

    assert_refused(owner_api.get(url + "?page=1&anything=a%00b"), "anything")


def test_a_nul_in_a_processflow_mapping_is_refused_400_and_nothing_is_saved(owner_api, acme):
    definition = webhook_definition(
        make_credential(acme),
        steps=[{"name": "document", "type": "map", "mapping": {"email": "ada\u0000"}}],
    )

    response = owner_api.post(
        f"{BASE}/processflows/", {"name": "Bookings", "definition": definition}, format="json"
    )

    error = assert_error(response, 400)
    assert list(error["fields"]) == ["definition.steps[0].mapping.email"]
    assert not every(Processflow).exists()


def test_a_nul_in_a_json_key_is_refused_400(owner_api, acme):
    flow = make_processflow(acme, make_credential(acme))
    definition = webhook_definition(
        make_credential(acme, name="Other"),
        steps=[{"name": "document", "type": "map", "mapping": {"e\u0000mail": "x"}}],
    )

    response = owner_api.patch(
        f"{BASE}/processflows/{flow.pk}/", {"definition": definition}, format="json"
    )

    assert list(assert_error(response, 400)["fields"]) == ["definition.steps[0].mapping.e\x00mail"]
    assert flow.versions.count() == 1


def test_an_unpaired_surrogate_in_json_is_refused_400_and_nothing_is_saved(owner_api):
    body = '{"application": "calendly", "name": "Sales \\ud800 team", "secrets": {}}'

    response = owner_api.post(f"{BASE}/credentials/", body, content_type="application/json")

    error = assert_error(response, 400)
    assert list(error["fields"]) == ["name"]
    assert "unpaired surrogate" in error["message"]
    assert not every(Credential).exists()


def test_escaped_characters_that_can_be_stored_are_accepted(login, cast):
    body = '{"name": "Caf\\u00e9 script \\ud83d\\ude00", "expires_in_days": 5}'

    response = login(cast["owner"]).post(f"{BASE}/tokens/", body, content_type="application/json")

    assert response.status_code == 201, response.content
    assert response.json()["name"] == "Café script 😀"


def test_a_nul_in_a_form_encoded_api_body_is_refused_400(owner_api):
    response = owner_api.post(f"{BASE}/invitations/", {"email": "ada\x00@example.com"})

    assert_refused(response, "email")
    assert not every(Invitation).exists()


def test_a_nul_in_a_header_is_refused_400(owner_api):
    response = owner_api.get("/api/v1/me/", headers={"X-Request-Id": "a\x00b"})

    assert_refused(response, "X-Request-Id")


def test_a_json_body_nested_beyond_any_use_is_refused_400_not_500(owner_api):
    body = "[" * 100_000 + "]" * 100_000

    response = owner_api.post(f"{BASE}/credentials/", body, content_type="application/json")

    assert_error(response, 400)


# --- Webhook intake -----------------------------------------------------------------------------


def test_a_hook_url_holding_nul_is_404_without_an_intake_alarm(client, db, caplog):
    with caplog.at_level(logging.INFO):
        response = client.post("/hooks/%00/", b"{}", content_type="application/json")

    assert_error(response, 404)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def hook(owner, acme):
    return deploy_hook(make_processflow(acme, make_credential(acme)))


def test_a_delivery_with_a_nul_in_a_header_intake_keeps_is_refused_400_not_503(
    client, hook, caplog
):
    body = b'{"event": "invitee.created", "payload": {"email": "ada@example.com"}}'
    headers = {**signed(hook.key, body), "User-Agent": "Calendly\x00"}

    with caplog.at_level(logging.INFO):
        response = hook.post(client, body, headers=headers)

    assert_refused(response, "User-Agent")
    assert not every(TriggerEvent).exists()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_signed_body_holding_nul_is_refused_by_intake_with_its_reason_and_recorded(client, hook):
    """Intake, not the middleware, answers for webhook bodies: it verifies the signature
    first, then refuses with a reason the sender sees and records the refusal."""
    body = b'{"event": "invitee.created", "payload": {"email": "ada\\u0000@example.com"}}'

    response = hook.post(client, body)

    assert response.status_code == 400
    reason = "Body holds a NUL character or an unpaired surrogate."
    assert response.json()["message"] == reason
    assert list(every(RejectedDelivery).values_list("status_code", "reason")) == [(400, reason)]
    assert not every(TriggerEvent).exists()


# --- Pages --------------------------------------------------------------------------------------


def test_a_nul_in_a_page_query_is_refused_400(login, cast):
    response = login(cast["member"]).get("/o/acme/runs/?status=%00")

    assert response.status_code == 400
    assert "'status'" in response.content.decode()


def test_a_nul_in_a_page_form_field_is_refused_400_and_nothing_is_saved(login, cast):
    response = login(cast["owner"]).post(
        "/o/acme/members/", {"email": "ada\x00@example.com", "role": "member"}
    )

    assert response.status_code == 400
    assert "'email'" in response.content.decode()
    assert not every(Invitation).exists()


@pytest.mark.parametrize("path", ["/o/ac%00me/runs/", "/invitations/abc%00def/", "/%00"])
def test_a_nul_in_a_page_url_is_404(path, login, cast):
    assert login(cast["member"]).get(path).status_code == 404
