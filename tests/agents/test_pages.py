"""Manage > Agents: admins and owners add agents (the registration key shown once), make
new keys, revoke; everyone in the organization sees the list, read-only."""

from __future__ import annotations

import pytest

from portal.agents import services
from portal.agents.models import Agent
from tests.agents.conftest import BASE, agent_client
from tests.factories import every, register_agent


def url(org="acme") -> str:
    return f"/o/{org}/agents/"


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_an_admin_or_owner_adds_an_agent_and_sees_its_key_once(role, login, cast):
    page = login(cast[role])
    response = page.post(url(), {"name": "Plant A", "group": ""})
    html = response.content.decode()
    assert response.status_code == 200
    agent = every(Agent).get(name="Plant A")
    assert agent.group.name == "Plant A"
    assert 'id="registration-key-value"' in html
    assert "cpr_" in html
    key = html.split('id="registration-key-value">')[1].split("<")[0]
    assert key not in page.get(url()).content.decode()
    assert services.register(key=key).agent.pk == agent.pk


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_see_the_list_but_cannot_add_or_revoke(role, login, cast, acme):
    registered = register_agent(acme)
    page = login(cast[role])
    html = page.get(url()).content.decode()
    assert "Plant A" in html
    assert 'id="new-agent"' not in html
    assert "Revoke" not in html
    assert page.post(url(), {"name": "Sneaky"}).status_code == 403
    revoke = f"/o/acme/agents/{registered.agent.pk}/revoke/"
    assert page.post(revoke).status_code == 403
    assert every(Agent).filter(revoked_at__isnull=False).count() == 0


def test_heartbeats_applications_are_shown_with_their_validity(login, cast, acme):
    registered = register_agent(acme)
    agent_client(registered.secret).post(
        f"{BASE}heartbeat",
        {
            "version": "1.2.3",
            "applications": [
                {"application": "calendly", "name": "main", "valid": True, "validated_at": None,
                 "personal_access_token": "must-not-be-kept"},
                {"application": "github", "name": "ops", "valid": False, "validated_at": None},
            ],
        },
        format="json",
    )  # fmt: skip
    html = login(cast["viewer"]).get(url()).content.decode()
    assert "calendly: main" in html
    assert "github: ops" in html
    assert "not valid" in html
    assert "1.2.3" in html
    assert "Online" in html
    assert "must-not-be-kept" not in repr(list(every(Agent).values()))


def test_revoking_from_the_page_shuts_the_agent_out_at_once(login, cast, acme):
    registered = register_agent(acme)
    login(cast["admin"]).post(f"/o/acme/agents/{registered.agent.pk}/revoke/")
    response = agent_client(registered.secret).post(f"{BASE}heartbeat", {}, format="json")
    assert response.status_code == 401


def test_a_second_agent_joins_an_existing_group(login, cast, acme):
    first = register_agent(acme)
    login(cast["owner"]).post(url(), {"name": "Plant A2", "group": first.agent.group_id})
    assert every(Agent).get(name="Plant A2").group_id == first.agent.group_id


def test_an_agent_named_like_an_existing_group_without_choosing_it_is_refused(login, cast, acme):
    register_agent(acme)
    response = login(cast["owner"]).post(url(), {"name": "Plant A"})
    assert response.status_code == 400
    assert "exists already" in response.content.decode()
