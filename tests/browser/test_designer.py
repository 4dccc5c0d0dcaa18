"""Where users spend their day, in a real browser: build a processflow in the designer from
scratch (trigger, two steps, a mapping picked from a sample, Test step), deploy it, fire a
sandbox event and watch the run go green without reloading. Screenshots of each page land
in ``test-artifacts/browser/<test>/``."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.processflows.models import Processflow
from tests.browser.test_manage_app import log_in
from tests.factories import every, make_credential
from tests.processes import purge_queues, start_worker
from tests.processflows.reliability.support import start_relay

pytestmark = [pytest.mark.browser, pytest.mark.services]


@pytest.fixture
def workers(portal, live_server, calendly_sandbox, settings):
    """The outbox relay and a Celery worker, talking to the sandbox and the live portal."""
    settings.PORTAL_BASE_URL = live_server.url
    purge_queues()
    relay = start_relay()
    worker = start_worker(
        extra_env={
            "CALENDLY_API_BASE_URL": calendly_sandbox.url,
            "PORTAL_BASE_URL": live_server.url,
        }
    )
    yield worker
    worker.stop()
    relay.stop()


def test_a_flow_built_in_the_designer_runs_green_without_a_reload(
    page, shot, owner, acme, calendly_sandbox, workers
):
    make_credential(acme, name="Sales team")
    log_in(page, owner)
    page.locator("#menu-manage > summary").click()
    page.locator("#nav-manage-processflows").click()
    shot(page, "processflows-empty")
    page.get_by_role("link", name="New processflow").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New processflow")
    shot(page, "designer-new")

    # The trigger: Calendly's invitee.created through the Sales team credential.
    page.get_by_label("Name", exact=True).fill("Bookings to CRM")
    page.locator("#t-credential").select_option(label="Sales team")
    page.get_by_label("invitee.created").check()
    page.get_by_role("button", name="Load a sample").click()
    samples = page.locator("#samples")
    expect(samples.get_by_role("button", name=re.compile(r"^payload\.email"))).to_be_visible()

    # Step 1: who the token is (Get Current User), tested now.
    page.get_by_role("button", name="+ Action step").click()
    expect(page.locator("#step-0-name")).to_be_focused()
    page.locator("#step-0-name").fill("me")
    page.locator("#step-0-application").select_option(label="Calendly")
    expect(page.locator("#step-0-action")).to_be_enabled()
    expect(page.locator("#step-0")).to_be_enabled()
    page.locator("#step-0-action").select_option(label="Get Current User")
    expect(page.locator("#step-0").get_by_text("GET /users/me")).to_be_visible()
    expect(page.locator("#step-0-credential")).to_be_enabled()
    page.locator("#step-0-credential").select_option(label="Sales team")
    page.get_by_role("button", name="Test step").click()
    result = page.locator("#step-0-result")
    expect(result).to_contain_text("200 OK")
    expect(page.locator("#step-0-sample")).to_contain_text("olivia.owner@example.com")
    shot(page, "designer-test-step")

    # Step 2: a document mapped from the samples, picked rather than typed.
    page.get_by_role("button", name="+ Map step").click()
    page.locator("#step-1-name").fill("document")
    page.locator("#step-1-mkey-0").fill("email")
    page.locator("#step-1-mval-0").focus()
    samples.get_by_role("button", name=re.compile(r"^payload\.email")).click()
    expect(page.locator("#step-1-mval-0")).to_have_value("{{ trigger.payload.email }}")
    page.get_by_role("button", name="Add field").click()
    page.locator("#step-1-mkey-1").fill("owner")
    page.locator("#step-1-mval-1").focus()
    samples.get_by_role("button", name=re.compile(r"^resource\.name")).click()
    expect(page.locator("#step-1-mval-1")).to_have_value("{{ steps.me.resource.name }}")
    page.locator("#definition-json > summary").click()
    expect(page.locator("#definition-text")).to_contain_text('"type": "webhook"')
    shot(page, "designer-complete")

    page.get_by_role("button", name="Save processflow").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bookings to CRM")
    flow = every(Processflow).get()
    assert flow.versions.get().definition["steps"][1]["mapping"] == {
        "email": "{{ trigger.payload.email }}",
        "owner": "{{ steps.me.resource.name }}",
    }
    shot(page, "saved")

    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.locator("#registration-state .badge")).to_have_text(
        "Active", timeout=60_000
    )  # registered by the worker; the panel refreshes itself
    shot(page, "deployed")

    calendly_sandbox.fire("invitee.created", email="grace@example.com")
    run_row = page.locator("#runs-live tbody tr").first
    expect(run_row.locator(".badge")).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator("#events-live tbody tr").first).to_contain_text("invitee.created")
    shot(page, "run-succeeded")

    run_row.get_by_role("link", name=re.compile(r"^#\d+")).click()
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(page.locator(".json-tree").last).to_contain_text('"grace@example.com"')
    shot(page, "run")

    page.get_by_role("link", name="Dashboard").click()
    chart = page.locator("#chart-hourly")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["height"] > 50  # the server-drawn SVG renders
    expect(chart.locator("rect.ok").last).to_have_attribute("height", re.compile(r"^[1-9]"))
    shot(page, "dashboard")

    page.locator("#menu-manage > summary").click()
    page.locator("#nav-manage-alerts").click()
    page.get_by_label("Name").fill("On call")
    page.get_by_label("E-mail address").fill("oncall@acme.test")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#alert-rules")).to_contain_text("oncall@acme.test")
    shot(page, "alerts")
    assert page.problems == []
