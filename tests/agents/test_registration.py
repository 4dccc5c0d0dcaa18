"""Pairing an agent: a one-time key made in the portal, valid 24 hours, working once; the
agent's secret is shown to the agent once and stored hashed; revoking is immediate."""

from __future__ import annotations

import logging

import pytest
from django.utils import timezone

from portal.agents import services
from portal.agents.models import Agent, RegistrationKey
from tests.agents.conftest import BASE, agent_client
from tests.factories import every, make_agent

INVALID = "This registration key is not valid: it may have expired or been used."


def register(client, key: str):
    return client.post(
        f"{BASE}register",
        {"key": key, "name": "plant-a", "hostname": "plant-a.local", "version": "1.0"},
        format="json",
    )


def test_a_registration_key_pairs_the_agent_and_answers_its_secret_once(acme, owner, client):
    issued = make_agent(acme)
    response = register(client, issued.key)
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith(f"cpa_{acme.pk}.{issued.agent.pk}.")
    assert body["agent"]["group"]["name"] == "Plant A"
    assert body["agent"]["organization"] == {"slug": "acme", "name": "Acme"}
    assert (
        agent_client(body["secret"]).post(f"{BASE}heartbeat", {}, format="json").status_code == 200
    )


def test_a_registration_key_works_once(acme, owner, client):
    issued = make_agent(acme)
    assert register(client, issued.key).status_code == 201
    again = register(client, issued.key)
    assert again.status_code == 400
    assert again.json()["error"]["message"] == INVALID


def test_a_registration_key_expires_after_24_hours(acme, owner, client):
    issued = make_agent(acme)
    assert issued.registration_key.expires_at <= timezone.now() + timezone.timedelta(hours=24)
    RegistrationKey.objects.for_tenant(acme).update(
        expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    response = register(client, issued.key)
    assert (response.status_code, response.json()["error"]["message"]) == (400, INVALID)


@pytest.mark.parametrize(
    "key", ["", "cpr_", "cpr_1.2.short", "cpa_1.1.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 7]
)
def test_a_malformed_or_unknown_key_gets_the_same_one_message(db, client, key):
    response = register(client, key)
    assert (response.status_code, response.json()["error"]["message"]) == (400, INVALID)


def test_a_key_of_the_right_shape_but_wrong_random_part_is_refused(acme, owner, client):
    issued = make_agent(acme)
    forged = issued.key.rsplit(".", 1)[0] + ".A" + "b" * 42
    assert register(client, forged).status_code == 400
    assert register(client, issued.key).status_code == 201


def test_only_hashes_of_the_key_and_secret_are_stored(acme, owner, client):
    issued = make_agent(acme)
    secret = register(client, issued.key).json()["secret"]
    stored = repr(list(every(Agent).values())) + repr(list(every(RegistrationKey).values()))
    assert issued.key not in stored
    assert secret not in stored
    assert issued.key.rsplit(".", 1)[1] not in stored
    assert secret.rsplit(".", 1)[1] not in stored


def test_a_revoked_agent_gets_401_on_its_next_request(acme, owner, client):
    issued = make_agent(acme)
    secret = register(client, issued.key).json()["secret"]
    agent = agent_client(secret)
    assert agent.get(f"{BASE}jobs", {"wait": 0}).status_code == 200
    services.revoke_agent(acme, actor=_owner(acme), agent_id=issued.agent.pk)
    assert agent.get(f"{BASE}jobs").status_code == 401
    for path in ["heartbeat", "runs/1/report", "runs/1/lease", "jobs/poll:1:1/result"]:
        response = agent.post(f"{BASE}{path}", {}, format="json")
        assert response.status_code == 401, path
        assert "revoked" in response.json()["error"]["message"]


def test_a_revoked_agents_unused_key_stops_working(acme, owner, client):
    issued = make_agent(acme)
    services.revoke_agent(acme, actor=_owner(acme), agent_id=issued.agent.pk)
    assert register(client, issued.key).status_code == 400


def test_a_new_registration_key_replaces_the_secret_of_the_copy_installed_before(
    acme, owner, client
):
    issued = make_agent(acme)
    old = register(client, issued.key).json()["secret"]
    fresh = services.new_registration_key(acme, actor=_owner(acme), agent_id=issued.agent.pk)
    new = register(client, fresh.key).json()["secret"]
    assert agent_client(old).post(f"{BASE}heartbeat", {}, format="json").status_code == 401
    assert agent_client(new).post(f"{BASE}heartbeat", {}, format="json").status_code == 200


def test_a_request_without_the_agents_secret_is_401(db, client):
    assert client.get(f"{BASE}jobs").status_code == 401
    assert client.get(f"{BASE}jobs", HTTP_AUTHORIZATION="Bearer cpt_x").status_code == 401


def test_neither_key_nor_secret_reaches_the_logs(acme, owner, client, caplog):
    caplog.set_level(logging.DEBUG)
    issued = make_agent(acme)
    secret = register(client, issued.key).json()["secret"]
    agent_client(secret).get(f"{BASE}jobs", {"wait": 0})
    agent_client(secret + "x").get(f"{BASE}jobs", {"wait": 0})
    assert issued.key not in caplog.text
    assert secret not in caplog.text


def _owner(acme):
    from tests.factories import owner_of

    return owner_of(acme)
