"""The seed's flow in a real browser: log in, Manage > App, Calendly > Credential > REST, Add
New Credential, Validate against the (sandbox) Calendly API, Save.

Screenshots of each step land in ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from connectors.calendly.sandbox import seed
from portal.vault.models import Credential, CredentialStatus
from tests.conftest import PASSWORD
from tests.factories import every

pytestmark = pytest.mark.browser

WRONG_TOKEN = "eyJhbGciOiJIUzI1NiJ9.not-a-calendly-token.c2lnbmF0dXJl"
REJECTED = "Calendly rejected the Personal Access Token (401). Check the token and validate again."


def log_in(page, user) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/o/acme/"))


def open_new_calendly_rest_form(page, shot):
    """From any portal page: Manage > App, expand Calendly > Credential > REST, Add New
    Credential; returns the inline form."""
    page.locator("#menu-manage > summary").click()
    expect(page.locator("#nav-manage-app")).to_be_visible()
    shot(page, "manage-menu-open")
    page.locator("#nav-manage-app").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Manage › App")
    page.locator("#app-calendly > summary").click()
    page.locator("#credential-calendly > summary").click()
    rest = page.locator("#node-calendly-rest")
    rest.locator("> summary").click()
    expect(rest).to_have_attribute("open", "")
    shot(page, "rest-node-expanded")
    tree_url = page.url
    rest.get_by_role("link", name="Add New Credential").click()
    form = page.locator("#form-calendly-rest form.credential-form")
    expect(form).to_be_visible()
    assert page.url == tree_url  # loaded in place by htmx, not by following the link
    expect(form.get_by_role("heading")).to_have_text("New Calendly REST credential")
    shot(page, "form-loaded-inline")
    return form


def test_an_owner_adds_a_calendly_credential_validated_against_calendly(
    page, shot, owner, calendly_sandbox
):
    log_in(page, owner)
    form = open_new_calendly_rest_form(page, shot)
    form.get_by_label("Credential name").fill("Sales team")
    form.get_by_label("Personal Access Token").fill(seed.OWNER_TOKEN)

    form.get_by_role("button", name="Validate").click()
    result = form.locator(".validation-result")
    expect(result).to_have_class(re.compile(r"\bsuccess\b"))
    expect(result).to_contain_text(
        "Connected to Calendly as Olivia Owner (olivia.owner@example.com), organization "
    )
    shot(page, "validated")
    assert [(e.path, e.status) for e in calendly_sandbox.exchanges] == [("/users/me", 200)]
    assert not every(Credential).exists()  # validating saves nothing

    form.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text(
        "Connection Saved Successfully! Connected to Calendly as Olivia Owner"
    )
    row = page.locator("#node-calendly-rest table.credentials tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").first).to_have_text("Sales team")
    expect(page.locator("#app-calendly > summary .badge")).to_have_text("1 credential")
    shot(page, "saved")

    assert seed.OWNER_TOKEN not in page.content()
    credential = every(Credential).get()
    assert (credential.organization.slug, credential.application, credential.type) == (
        "acme",
        "calendly",
        "rest",
    )
    assert credential.name == "Sales team"
    assert credential.status in (CredentialStatus.VALID, CredentialStatus.UNVALIDATED)
    expect(row.locator(".badge")).to_have_text(credential.get_status_display())
    assert page.problems == []


def test_a_wrong_token_is_rejected_in_place_with_calendlys_401_message(
    page, shot, owner, calendly_sandbox
):
    log_in(page, owner)
    form = open_new_calendly_rest_form(page, shot)
    form.get_by_label("Credential name").fill("Sales team")
    form.get_by_label("Personal Access Token").fill(WRONG_TOKEN)

    form.get_by_role("button", name="Validate").click()
    result = form.locator(".validation-result")
    expect(result).to_have_class(re.compile(r"\berror\b"))
    expect(result).to_have_text(REJECTED)
    shot(page, "rejected")

    assert [(e.path, e.status) for e in calendly_sandbox.exchanges] == [("/users/me", 401)]
    assert WRONG_TOKEN not in page.content()
    assert not every(Credential).exists()
    assert page.problems == []
