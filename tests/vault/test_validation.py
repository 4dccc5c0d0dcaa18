"""Validating credentials against the (sandbox) Calendly API: a good token names the account
and organization it reaches, a refused one says exactly why, and an outage says Calendly
could not be reached without marking a stored credential invalid. Through the services, the
portal's Validate fragment and the API."""

from __future__ import annotations

import pytest
from django.urls import reverse

from connectors.calendly.sandbox import seed
from connectors.netguard import REFUSED
from portal.vault import services
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from tests.factories import every, make_credential
from tests.vault.conftest import REJECTED, TOKEN_FIELD

WRONG_TOKEN = "eyJhbGciOiJIUzI1NiJ9.not-a-calendly-token.c2lnbmF0dXJl"
UNCHANGED = "The credential was not marked invalid; try again later."
FAULTS = 10  # more than the gateway's attempts (a first try and three retries)


def connected(calendly) -> str:
    return (
        "Connected to Calendly as Olivia Owner (olivia.owner@example.com), organization "
        f"{calendly.url}/organizations/{seed.ORGANIZATION_UUID}."
    )


@pytest.fixture
def outage(calendly, settings):
    """``outage("status")``: Calendly answers 503 to /users/me; ``outage("stall")``: it
    answers later than the portal's read timeout. Every retry meets the same fault."""

    def make(kind: str) -> str:
        if kind == "status":
            calendly.inject_fault("/users/me", "status", times=FAULTS, status=503)
            return "Calendly could not be reached: "
        settings.PORTAL_CONNECTOR_READ_TIMEOUT = 0.3
        calendly.inject_fault("/users/me", "stall", times=FAULTS, seconds=1.5)
        return "Calendly did not answer in time "

    return make


@pytest.fixture
def valid_credential(acme, calendly):
    """A stored credential that was valid at its last check."""
    credential = make_credential(acme)
    every(Credential).filter(pk=credential.pk).update(
        status=CredentialStatus.VALID, status_message="Connected earlier."
    )
    return credential


def status_of(credential) -> str:
    return every(Credential).get(pk=credential.pk).status


# --- Services ----------------------------------------------------------------------------------


def test_a_good_token_validates_naming_the_account_and_organization(
    acme, owner, as_member, calendly
):
    outcome = services.check_connection(
        acme,
        actor=as_member(owner),
        application="calendly",
        secrets={TOKEN_FIELD: seed.OWNER_TOKEN},
    )

    assert (outcome.ok, outcome.status) == (True, CredentialStatus.VALID)
    assert outcome.message == connected(calendly)
    assert outcome.account["email"] == "olivia.owner@example.com"
    assert [(e.path, e.status) for e in calendly.exchanges] == [("/users/me", 200)]


def test_checking_typed_values_saves_nothing(acme, owner, as_member, calendly):
    services.check_connection(
        acme,
        actor=as_member(owner),
        application="calendly",
        secrets={TOKEN_FIELD: seed.OWNER_TOKEN},
    )

    assert not every(Credential).exists()
    assert not every(CredentialEvent).exists()


def test_a_refused_token_gets_calendlys_401_message(acme, owner, as_member, calendly):
    outcome = services.check_connection(
        acme, actor=as_member(owner), application="calendly", secrets={TOKEN_FIELD: WRONG_TOKEN}
    )

    assert (outcome.ok, outcome.status, outcome.message) == (
        False,
        CredentialStatus.INVALID,
        REJECTED,
    )


def test_validating_a_stored_good_token_marks_it_valid_with_its_account(
    acme, owner, as_member, calendly
):
    credential = make_credential(acme)

    services.validate_credential(acme, actor=as_member(owner), credential_id=credential.pk)

    stored = every(Credential).get(pk=credential.pk)
    assert (stored.status, stored.status_message) == (CredentialStatus.VALID, connected(calendly))
    assert stored.account["name"] == "Olivia Owner"
    assert stored.validated_at is not None


def test_validating_a_stored_refused_token_marks_it_invalid(acme, owner, as_member, calendly):
    credential = make_credential(acme, token=WRONG_TOKEN)

    outcome = services.validate_credential(
        acme, actor=as_member(owner), credential_id=credential.pk
    )

    stored = every(Credential).get(pk=credential.pk)
    assert (stored.status, stored.status_message) == (CredentialStatus.INVALID, REJECTED)
    assert outcome.message == REJECTED
    event = every(CredentialEvent).get(credential=credential, action="validated")
    assert event.detail == {"ok": False, "message": REJECTED}


@pytest.mark.parametrize("kind", ["status", "stall"])
def test_an_outage_says_calendly_could_not_be_reached(acme, owner, as_member, outage, kind):
    expected_start = outage(kind)

    outcome = services.check_connection(
        acme,
        actor=as_member(owner),
        application="calendly",
        secrets={TOKEN_FIELD: seed.OWNER_TOKEN},
    )

    assert (outcome.ok, outcome.status) == (False, None)
    assert outcome.message.startswith(expected_start), outcome.message
    assert outcome.message.endswith(UNCHANGED)


@pytest.mark.parametrize("kind", ["status", "stall"])
def test_an_outage_leaves_a_stored_credentials_status_alone(
    acme, owner, as_member, outage, valid_credential, kind
):
    expected_start = outage(kind)

    outcome = services.validate_credential(
        acme, actor=as_member(owner), credential_id=valid_credential.pk
    )

    assert outcome.message.startswith(expected_start)
    stored = every(Credential).get(pk=valid_credential.pk)
    assert (stored.status, stored.status_message) == (CredentialStatus.VALID, outcome.message)


# --- Portal: the htmx Validate fragment --------------------------------------------------------


def validate_in_portal(client, token: str):
    return client.post(
        reverse("vault:credential_check", kwargs={"org": "acme", "application": "calendly"}),
        {"type": "rest", "name": "", TOKEN_FIELD: token},
        HTTP_HX_REQUEST="true",
    )


def fragment(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment for htmx to swap in, not a page
    return html


def test_the_validate_button_shows_the_account_of_a_good_token(login, owner, calendly):
    html = fragment(validate_in_portal(login(owner), seed.OWNER_TOKEN))

    assert 'class="alert success validation-result"' in html
    assert "Connected to Calendly as Olivia Owner (olivia.owner@example.com)" in html
    assert not every(Credential).exists()


def test_the_validate_button_shows_calendlys_refusal(login, owner, calendly):
    html = fragment(validate_in_portal(login(owner), WRONG_TOKEN))

    assert 'class="alert error validation-result"' in html
    assert f"<p>{REJECTED}</p>" in html


def test_the_validate_button_explains_an_empty_token(login, owner, calendly):
    html = fragment(validate_in_portal(login(owner), ""))

    assert "The Personal Access Token is required." in html
    assert calendly.exchanges == []


def test_the_validate_button_reports_an_outage(login, owner, outage):
    outage("status")

    html = fragment(validate_in_portal(login(owner), seed.OWNER_TOKEN))

    assert "Calendly could not be reached: " in html
    assert UNCHANGED in html


def test_revalidating_a_stored_credential_in_the_portal_survives_an_outage(
    login, owner, outage, valid_credential
):
    outage("stall")

    html = fragment(
        login(owner).post(
            reverse(
                "vault:credential_validate",
                kwargs={"org": "acme", "credential_id": valid_credential.pk},
            ),
            HTTP_HX_REQUEST="true",
        )
    )

    assert "Calendly did not answer in time" in html
    assert status_of(valid_credential) == CredentialStatus.VALID


def test_revalidating_a_stored_refused_token_in_the_portal_marks_it_invalid(
    acme, login, owner, calendly
):
    credential = make_credential(acme, token=WRONG_TOKEN)

    html = fragment(
        login(owner).post(
            reverse(
                "vault:credential_validate", kwargs={"org": "acme", "credential_id": credential.pk}
            ),
            HTTP_HX_REQUEST="true",
        )
    )

    assert REJECTED in html
    assert status_of(credential) == CredentialStatus.INVALID


def test_the_edit_forms_validate_button_uses_the_stored_token_when_none_is_typed(
    acme, login, owner, calendly
):
    credential = make_credential(acme)

    html = fragment(
        login(owner).post(
            reverse(
                "vault:credential_detail_check",
                kwargs={"org": "acme", "credential_id": credential.pk},
            ),
            {"name": "Sales team", TOKEN_FIELD: ""},
            HTTP_HX_REQUEST="true",
        )
    )

    assert connected(calendly) in html


def test_a_viewer_cannot_press_validate(login, viewer, calendly):
    response = validate_in_portal(login(viewer), seed.OWNER_TOKEN)

    assert response.status_code == 403
    assert calendly.exchanges == []


# --- API ---------------------------------------------------------------------------------------

CHECK = "/api/v1/organizations/acme/credentials/check/"


def validate_url(credential) -> str:
    return f"/api/v1/organizations/acme/credentials/{credential.pk}/validate/"


def test_the_api_checks_a_good_token_without_saving_it(acme, owner, api, calendly):
    response = api(owner, acme).post(
        CHECK,
        {"application": "calendly", "secrets": {TOKEN_FIELD: seed.OWNER_TOKEN}},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["status"], body["message"]) == (
        True,
        "valid",
        connected(calendly),
    )
    assert body["account"]["name"] == "Olivia Owner"
    assert not every(Credential).exists()


def test_the_api_check_reports_calendlys_refusal(acme, owner, api, calendly):
    response = api(owner, acme).post(
        CHECK, {"application": "calendly", "secrets": {TOKEN_FIELD: WRONG_TOKEN}}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "message": REJECTED,
        "account": {},
        "status": "invalid",
    }


def test_the_api_check_reports_an_outage(acme, owner, api, outage):
    outage("status")

    response = api(owner, acme).post(
        CHECK,
        {"application": "calendly", "secrets": {TOKEN_FIELD: seed.OWNER_TOKEN}},
        format="json",
    )

    body = response.json()
    assert (body["ok"], body["status"]) == (False, None)
    assert body["message"].startswith("Calendly could not be reached: ")


def test_the_api_validates_a_stored_credential_and_records_the_result(acme, owner, api, calendly):
    credential = make_credential(acme)

    response = api(owner, acme).post(validate_url(credential))

    assert response.status_code == 200
    assert response.json()["message"] == connected(calendly)
    assert status_of(credential) == CredentialStatus.VALID


def test_the_api_marks_a_stored_refused_token_invalid(acme, owner, api, calendly):
    credential = make_credential(acme, token=WRONG_TOKEN)

    response = api(owner, acme).post(validate_url(credential))

    assert response.json()["message"] == REJECTED
    assert status_of(credential) == CredentialStatus.INVALID


def test_the_api_validate_leaves_a_stored_credential_alone_during_an_outage(
    acme, owner, api, outage, valid_credential
):
    outage("stall")

    response = api(owner, acme).post(validate_url(valid_credential))

    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["status"]) == (False, None)
    assert body["message"].startswith("Calendly did not answer in time")
    assert status_of(valid_credential) == CredentialStatus.VALID


# --- Destinations the network policy refuses -----------------------------------------------------

INTERNAL_DESTINATIONS = {
    "http://localhost:9/": "'localhost' (127.0.0.1) is a loopback address",
    "http://10.20.30.40/": "'10.20.30.40' (10.20.30.40) is a private address",
    "http://169.254.10.10/": "'169.254.10.10' (169.254.10.10) is a link-local address",
    "http://169.254.169.254/": "is a cloud metadata address",
    "http://no-such-host.invalid/": "'no-such-host.invalid' does not resolve",
}


def test_refused_destinations_read_alike_to_users_and_the_log_says_why(
    api, acme, owner, login, caplog
):
    # Telling "loopback" from "private" from "does not resolve" would let anyone map the
    # internal network and its DNS through the Validate button.
    client, page = api(owner, acme), login(owner)
    check_page = reverse("vault:credential_check", kwargs={"org": "acme", "application": "rest"})
    shown = set()
    for base_url, detail in INTERNAL_DESTINATIONS.items():
        caplog.clear()
        with caplog.at_level("WARNING", logger="connectors.netguard"):
            answer = client.post(
                "/api/v1/organizations/acme/credentials/check/",
                {"application": "rest", "fields": {"base_url": base_url}},
                format="json",
            )
            html = fragment(
                page.post(
                    check_page,
                    {"type": "rest", "name": "", "base_url": base_url, "auth_type": "none"},
                    HTTP_HX_REQUEST="true",
                )
            )
        assert answer.status_code == 200, answer.content
        assert answer.json()["ok"] is False
        shown.add(answer.json()["message"])
        assert f"<p>{REFUSED}</p>" in html, base_url
        logged = [r for r in caplog.records if r.name == "connectors.netguard"]
        assert logged
        assert all(r.levelname == "WARNING" for r in logged)
        assert detail in logged[0].getMessage()
    assert shown == {REFUSED}
