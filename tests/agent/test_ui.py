"""The local UI, driven over HTTP as a browser would: the seed's On-Premise steps (log in,
Settings checkbox, ``+``, token, Validate, Save) and their messages, which are the Cloud
agent's own."""

from __future__ import annotations

import re

import pytest
import requests

from connectors.calendly.sandbox import seed
from portal.applications.validation import validate as cloud_validate
from tests.agent.conftest import agent_cli, agent_env, printed_password
from tests.agent.protocol import KEY

BAD_TOKEN = "not-a-real-calendly-token-00000000"


@pytest.fixture
def agent(agent_data, start_agent, protocol_portal, calendly_sandbox):
    """A registered agent whose portal asks for Calendly, logged in to its UI."""
    registered = agent_cli(agent_data, "register", "--portal", protocol_portal.url, "--key", KEY)
    running = start_agent(
        env=agent_env(
            CALENDLY_API_BASE_URL=calendly_sandbox.url, CONNECT_AGENT_HEARTBEAT_SECONDS="0.5"
        ),
        password=printed_password(registered.stdout),
    )
    protocol_portal.wait(lambda: protocol_portal.heartbeats)
    return running


def _enable_calendly(agent, session) -> None:
    session.post(agent.url + "settings/", data={"enabled": ["calendly"]}, timeout=60)


def _form(agent, session) -> str:
    answer = session.get(
        agent.url + "apps/calendly/new/", headers={"HX-Request": "true"}, timeout=60
    )
    assert answer.status_code == 200
    return answer.text


def _check(agent, session, token: str) -> str:
    answer = session.post(
        agent.url + "apps/calendly/check/",
        data={"type": "rest", "name": "main", "personal_access_token": token},
        headers={"HX-Request": "true"}, timeout=60,
    )  # fmt: skip
    return re.sub(r"\s+", " ", answer.text)


def test_pages_need_the_local_account(agent):
    answer = requests.get(agent.url + "apps/", allow_redirects=False, timeout=60)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login/")


def test_a_wrong_password_does_not_log_in(agent):
    session = requests.Session()
    page = session.get(agent.url + "login/", timeout=60)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        agent.url + "login/",
        data={"username": "admin", "password": "wrong", "csrfmiddlewaretoken": token},
        headers={"Referer": agent.url + "login/"}, timeout=60,
    )  # fmt: skip
    assert "Please enter a correct username and password" in answer.text


def test_a_post_without_the_csrf_token_is_refused(agent):
    session = agent.login()
    del session.headers["X-CSRFToken"]
    answer = session.post(agent.url + "settings/", data={"enabled": ["calendly"]}, timeout=60)
    assert answer.status_code == 403


def test_the_settings_panel_lists_the_applications_the_portal_asks_for(agent):
    page = agent.login().get(agent.url + "settings/", timeout=60).text
    assert 'type="checkbox" name="enabled" value="calendly"' in page
    assert "Calendly" in page


def test_an_application_appears_in_app_configurations_once_ticked(agent):
    session = agent.login()
    assert 'id="add-calendly"' not in session.get(agent.url + "apps/", timeout=60).text
    _enable_calendly(agent, session)
    assert 'id="add-calendly"' in session.get(agent.url + "apps/", timeout=60).text


def test_plus_opens_the_credential_panel_of_the_connectors_declared_fields(agent):
    session = agent.login()
    _enable_calendly(agent, session)
    form = _form(agent, session)
    assert "New Calendly" in form
    assert 'type="password" name="personal_access_token"' in form
    assert ">Validate</button>" in form
    assert ">Save</button>" in form


def test_validate_confirms_the_token_reaches_calendly(agent):
    session = agent.login()
    _enable_calendly(agent, session)
    assert "Connected to Calendly as" in _check(agent, session, seed.OWNER_TOKEN)


def test_a_bad_token_gets_exactly_the_cloud_agents_message(agent, calendly_sandbox, monkeypatch):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    cloud = cloud_validate(
        "calendly", type="rest", fields={}, secrets={"personal_access_token": BAD_TOKEN}
    )
    session = agent.login()
    _enable_calendly(agent, session)
    shown = _check(agent, session, BAD_TOKEN)
    assert not cloud.ok
    assert f'<div class="alert error validation-result" role="alert"><p>{cloud.message}</p>' in (
        shown.replace("&#x27;", "'").replace("&quot;", '"')
    )


def test_save_says_connection_saved_successfully(agent):
    session = agent.login()
    _enable_calendly(agent, session)
    answer = session.post(
        agent.url + "apps/calendly/new/",
        data={"type": "rest", "name": "main", "personal_access_token": seed.OWNER_TOKEN},
        timeout=60,
    )
    assert "Connection Saved Successfully!" in answer.text
    assert "Valid" in answer.text


def test_the_heartbeat_reports_the_connection_by_name_and_validity_only(agent, protocol_portal):
    session = agent.login()
    _enable_calendly(agent, session)
    session.post(
        agent.url + "apps/calendly/new/",
        data={"type": "rest", "name": "main", "personal_access_token": seed.OWNER_TOKEN},
        timeout=60,
    )
    protocol_portal.wait(
        lambda: any(h["applications"] for h in protocol_portal.heartbeats), timeout=120
    )
    reported = next(h for h in protocol_portal.heartbeats if h["applications"])["applications"]
    assert [(a["application"], a["name"], a["valid"]) for a in reported] == [
        ("calendly", "main", True)
    ]
    assert seed.OWNER_TOKEN not in repr(protocol_portal.requests)


def test_an_empty_token_is_refused_with_the_portals_message(agent):
    session = agent.login()
    _enable_calendly(agent, session)
    assert "The Personal Access Token is required." in _check(agent, session, "")
