"""Fixtures for the agent transport: a registered agent of Acme (its group has a Calendly
credential named "main"), an API client speaking as it, and flows deployed to its group."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import owner_of, register_agent

MAIN = [{"application": "calendly", "name": "main", "valid": True, "validated_at": None}]
BASE = "/api/v1/agent/"


def agent_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Agent {secret}")
    return client


def agent_definition(*, credential: str = "main", steps: list | None = None) -> dict:
    """A triggered flow on Calendly's invitee.created, credentials named on the agent."""
    return {
        "trigger": {
            "type": "webhook",
            "application": "calendly",
            "credential": credential,
            "events": ["invitee.created"],
            "options": {"scope": "organization"},
        },
        "steps": steps
        or [
            {"name": "document", "type": "map", "mapping": {"email": "{{ trigger.payload.email }}"}}
        ],
    }


@pytest.fixture
def plant(acme, owner):
    """Acme's registered agent "Plant A" (``.agent``, ``.secret``) with Calendly "main"."""
    return register_agent(acme, applications=MAIN)


@pytest.fixture
def plant_api(plant) -> APIClient:
    return agent_client(plant.secret)


@pytest.fixture
def group_flow(acme, owner, plant):
    """A triggered flow meant for Plant A's group (not deployed)."""
    from portal.processflows import services

    return services.create_processflow(
        acme,
        actor=owner_of(acme),
        name="Bookings on premise",
        definition=agent_definition(),
        agent_group=plant.agent.group,
    )
