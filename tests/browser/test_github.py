"""GitHub in a real browser, the portal knowing nothing of GitHub but its connector's
declarations: Manage > App > GitHub > Credential > REST, Validate and Save a personal access
token; then a triggered processflow on ``issues.opened`` for owner/repo, Deploy, and the
repository webhook is created at the (sandbox) GitHub API by a real worker.

Screenshots of each step land in ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from connectors.github.sandbox import OWNER_TOKEN
from portal.processflows.models import Processflow
from portal.vault.models import Credential
from tests.browser.test_manage_app import log_in
from tests.factories import every
from tests.processes import purge_queues, start_worker

pytestmark = [pytest.mark.browser, pytest.mark.services]


@pytest.fixture
def portal(monkeypatch, live_server, settings, github_sandbox):
    """The live portal with its GitHub connector pointed at the sandbox by the one variable
    every connector reads, and a worker that registers subscriptions."""
    monkeypatch.setenv("GITHUB_API_BASE_URL", github_sandbox.url)
    settings.PORTAL_BASE_URL = live_server.url
    purge_queues()
    worker = start_worker(
        queues="actions,maintenance", extra_env={"PORTAL_BASE_URL": live_server.url}
    )
    yield live_server.url
    worker.stop()


def test_an_owner_adds_a_github_credential_and_deploys_a_flow_on_opened_issues(
    page, shot, owner, acme, github_sandbox, live_server
):
    log_in(page, owner)
    page.locator("#menu-manage > summary").click()
    page.locator("#nav-manage-app").click()
    page.locator("#app-github > summary").click()
    page.locator("#credential-github > summary").click()
    page.locator("#node-github-rest > summary").click()
    page.locator("#node-github-rest").get_by_role("link", name="Add New Credential").click()
    form = page.locator("#form-github-rest form.credential-form")
    expect(form.get_by_role("heading")).to_have_text("New GitHub REST credential")
    form.get_by_label("Credential name").fill("Octo")
    form.get_by_label("Personal access token").fill(OWNER_TOKEN)
    shot(page, "github-form")

    form.get_by_role("button", name="Validate").click()
    result = form.locator(".validation-result")
    expect(result).to_have_class(re.compile(r"\bsuccess\b"))
    expect(result).to_contain_text("Connected to GitHub as octocat (octocat@example.com)")
    shot(page, "validated")
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Connection Saved Successfully!")
    shot(page, "saved")
    credential = Credential.objects.for_tenant(acme).get(application="github")

    page.goto("/o/acme/processflows/new/")
    page.get_by_label("Name", exact=True).fill("Thank reporters")
    page.locator("#t-application").select_option(label="GitHub")
    expect(page.locator("#t-option-repo")).to_be_visible()
    page.locator("#t-credential").select_option(str(credential.pk))
    page.get_by_label("issues.opened", exact=True).check()
    page.locator("#t-option-owner").fill("octocat")
    page.locator("#t-option-repo").fill("hello-world")
    page.get_by_role("button", name="+ Map step").click()
    page.locator("#step-0-name").fill("note")
    page.locator("#step-0-mkey-0").fill("title")
    page.locator("#step-0-mval-0").fill("{{ trigger.issue.title }}")
    full = shot(page, "designer-filled")
    page.locator("#trigger").screenshot(path=str(full.with_name(f"{full.stem}-trigger.png")))
    page.get_by_role("button", name="Save processflow").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Thank reporters")
    flow = every(Processflow).get(name="Thank reporters")

    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.locator("#registration-state .badge")).to_have_text("Active", timeout=30_000)
    shot(page, "deployed-and-subscribed")

    [hook] = github_sandbox.hooks["octocat/hello-world"]
    assert hook["config"]["url"] == f"{live_server.url}/hooks/{flow.hook_id}/"
    assert hook["events"] == ["issues"]
    assert page.problems == []
