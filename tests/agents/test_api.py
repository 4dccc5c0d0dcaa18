"""Agents and agent groups in the REST API: the same services as Manage > Agents; the
registration key is in the answer that makes it and nowhere after; no agent secret ever."""

from __future__ import annotations

import uuid

import pytest

from portal.agents import services
from tests.agents.conftest import BASE, MAIN, agent_client

AGENTS = "/api/v1/organizations/acme/agents/"
GROUPS = "/api/v1/organizations/acme/agent-groups/"


@pytest.fixture
def admin_api(api, acme, cast):
    return api(cast["admin"], acme)


def test_an_admin_adds_an_agent_and_gets_its_registration_key_once(admin_api, client):
    created = admin_api.post(AGENTS, {"name": "Plant A"}, format="json")
    assert created.status_code == 201
    body = created.json()
    key = body["registration_key"]["key"]
    assert key.startswith("cpr_")
    assert body["group"]["name"] == "Plant A"
    assert body["state"] == "waiting"
    secret = services.register(key=key).secret
    listing = admin_api.get(AGENTS).content.decode()
    detail = admin_api.get(f"{AGENTS}{body['id']}/").content.decode()
    for text in (listing, detail):
        assert key not in text
        assert secret not in text
        assert "cpr_" not in text
        assert "cpa_" not in text


def test_a_replayed_create_does_not_show_the_key_again(admin_api):
    headers = {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex}
    first = admin_api.post(AGENTS, {"name": "Plant A"}, format="json", **headers)
    again = admin_api.post(AGENTS, {"name": "Plant A"}, format="json", **headers)
    assert first.json()["registration_key"]["key"].startswith("cpr_")
    assert again.json()["registration_key"] is None
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_read_agents_but_cannot_add_or_revoke(role, api, acme, cast):
    client = api(cast[role], acme)
    assert client.get(AGENTS).status_code == 200
    refused = client.post(AGENTS, {"name": "Sneaky"}, format="json")
    assert refused.status_code == 403
    assert "manage this organization's agents" in refused.json()["error"]["message"]
    assert client.post(GROUPS, {"name": "Sneaky"}, format="json").status_code == 403


def test_revoking_through_the_api_is_401_for_the_agent_at_once(admin_api, client):
    created = admin_api.post(AGENTS, {"name": "Plant A"}, format="json").json()
    secret = services.register(key=created["registration_key"]["key"]).secret
    revoked = admin_api.post(f"{AGENTS}{created['id']}/revoke/")
    assert revoked.json()["state"] == "revoked"
    assert agent_client(secret).get(f"{BASE}jobs").status_code == 401


def test_the_api_shows_what_an_agent_reports_and_a_groups_state(admin_api):
    created = admin_api.post(AGENTS, {"name": "Plant A"}, format="json").json()
    secret = services.register(key=created["registration_key"]["key"]).secret
    agent_client(secret).post(f"{BASE}heartbeat", {"version": "2.0", "applications": MAIN},
                              format="json")  # fmt: skip
    agent = admin_api.get(f"{AGENTS}{created['id']}/").json()
    assert agent["applications"] == MAIN
    assert (agent["version"], agent["online"], agent["state"]) == ("2.0", True, "online")
    (group,) = admin_api.get(GROUPS).json()["results"]
    assert (group["name"], group["agents"], group["online"]) == ("Plant A", 1, True)


def test_groups_are_made_and_agents_moved_into_them(admin_api):
    group = admin_api.post(GROUPS, {"name": "Plant A (HA)"}, format="json").json()
    created = admin_api.post(AGENTS, {"name": "a1", "group": group["id"]}, format="json").json()
    assert created["group"] == {"id": group["id"], "name": "Plant A (HA)"}
    other = admin_api.post(AGENTS, {"name": "a2"}, format="json").json()
    moved = admin_api.post(f"{AGENTS}{other['id']}/move/", {"group": group["id"]}, format="json")
    assert moved.json()["group"]["id"] == group["id"]
    clash = admin_api.post(GROUPS, {"name": "plant a (ha)"}, format="json")
    assert clash.status_code == 400
