"""The seed's On-Premise steps in a real browser, on the agent's own UI: log in with the
agent's local account, tick Calendly in Settings, click ``+`` beside Calendly in App
Configurations, enter the Personal Access Token, Validate, Save ("Connection Saved
Successfully!"); and an improper token failing validation exactly as in the Cloud agent.

The agent is the real program (``connect-agent register`` against the live portal, then
``run``); the portal asks it for Calendly as it does once a flow for its group needs it.
Screenshots of each step land in ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from connectors.calendly.sandbox import seed
from portal.agents import services as agent_services
from portal.agents.models import Agent
from tests.agent.conftest import (  # noqa: F401
    agent_cli,
    agent_data,
    agent_env,
    printed_password,
    start_agent,
)
from tests.browser.test_manage_app import REJECTED, WRONG_TOKEN
from tests.factories import every, make_agent
from tests.processes import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture
def plant(live_server, acme, owner, agent_data, start_agent, calendly_sandbox):  # noqa: F811
    """Acme's agent "Plant A": registered at the live portal, asked for Calendly, running."""
    issued = make_agent(acme, name="Plant A")
    agent_services.request_applications(issued.agent.group, {"calendly"})
    registered = agent_cli(agent_data, "register", "--portal", live_server.url, "--key", issued.key)
    assert registered.returncode == 0, registered.stderr
    running = start_agent(
        env=agent_env(
            CALENDLY_API_BASE_URL=calendly_sandbox.url, CONNECT_AGENT_HEARTBEAT_SECONDS="1"
        ),
        password=printed_password(registered.stdout),
    )
    running.record = issued.agent
    return running


@pytest.fixture
def portal(plant):
    """The browser's base URL: the agent's local UI (the ``page`` fixture opens it)."""
    return plant.url


def log_in(page, plant, shot) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in to this agent")
    shot(page, "login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(plant.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")


def enable_calendly(page, shot) -> None:
    """Settings: the Calendly checkbox (listed once the heartbeat brought it), Save."""
    checkbox = page.get_by_label("Calendly")
    for _ in range(60):  # the first heartbeat may still be on its way
        if checkbox.count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    shot(page, "settings-panel")
    checkbox.check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".message.success")).to_have_text("Settings saved.")
    expect(page.get_by_label("Calendly")).to_be_checked()
    shot(page, "calendly-enabled")


def open_credential_panel(page, shot):
    page.locator("#nav-apps").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("App Configurations")
    shot(page, "app-configurations")
    page.get_by_role("button", name="Add a Calendly connection").click()
    form = page.locator("#panel-calendly form.credential-form")
    expect(form).to_be_visible()
    expect(form.get_by_role("heading")).to_have_text("New Calendly REST connection")
    shot(page, "credential-panel")
    return form


def test_the_seeds_on_premise_steps_save_a_validated_calendly_connection(page, shot, plant):
    log_in(page, plant, shot)
    enable_calendly(page, shot)
    form = open_credential_panel(page, shot)
    form.get_by_label("Connection name").fill("main")
    form.get_by_label("Personal Access Token").fill(seed.OWNER_TOKEN)
    form.get_by_role("button", name="Validate").click()
    result = form.locator(".validation-result")
    expect(result).to_contain_text("Connected to Calendly as")
    shot(page, "validated")
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".message.success")).to_contain_text("Connection Saved Successfully!")
    expect(page.locator("#app-calendly .connections")).to_contain_text("main")
    shot(page, "saved")
    assert page.problems == []
    # The portal learns the connection's name and validity with the next heartbeat.
    wait_for(
        lambda: every(Agent).get(pk=plant.record.pk).applications,
        message=plant.process.output(),
    )
    [reported] = every(Agent).get(pk=plant.record.pk).applications
    assert (reported["name"], reported["valid"]) == ("main", True)


def test_an_improper_token_fails_validation_as_in_the_cloud_agent(page, shot, plant):
    log_in(page, plant, shot)
    enable_calendly(page, shot)
    form = open_credential_panel(page, shot)
    form.get_by_label("Connection name").fill("main")
    form.get_by_label("Personal Access Token").fill(WRONG_TOKEN)
    form.get_by_role("button", name="Validate").click()
    expect(form.locator(".validation-result")).to_have_text(REJECTED)
    shot(page, "rejected")
    assert page.problems == []
