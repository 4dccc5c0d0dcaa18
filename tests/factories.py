"""Builders for tenant-owned objects, through the same services the portal uses.

Each takes the organization first and returns the saved object; tests state only what
matters to them and let these fill in the rest.
"""

from __future__ import annotations

import json

from connectors.calendly.sandbox import seed
from portal.processflows import services as flow_services
from portal.processflows.models import Deployment, Run, TriggerEvent
from portal.tenancy.models import (
    Membership,
    Organization,
    Role,
    TenantOwnedModel,
    TenantQuerySet,
)
from portal.vault import services as vault_services
from portal.vault.audit import Actor
from portal.vault.models import Credential

SYSTEM = Actor.system("tests")


def every(model: type[TenantOwnedModel]) -> TenantQuerySet:
    """Every organization's rows of a tenant-owned ``model``, for assertions about them."""
    return model.objects.unscoped("tests look at every tenant's rows")


def owner_of(organization: Organization) -> Membership:
    """Some owner of ``organization`` (the cast's owner in Acme)."""
    return Membership.objects.for_tenant(organization).filter(role=Role.OWNER).first()


def make_credential(
    organization: Organization,
    *,
    name: str = "Sales team",
    token: str = seed.OWNER_TOKEN,
    application: str = "calendly",
    fields: dict | None = None,
    secrets: dict | None = None,
) -> Credential:
    """A stored credential; Calendly with ``token`` unless ``secrets`` say otherwise."""
    if secrets is None:
        secrets = {"personal_access_token": token} if application == "calendly" else {}
    return vault_services.create_credential(
        organization,
        actor=SYSTEM,
        application=application,
        name=name,
        fields=fields,
        secrets=secrets,
    )


def webhook_definition(credential: Credential, *, steps: list | None = None) -> dict:
    """A triggered flow on Calendly's invitee.created with one map step by default."""
    return {
        "trigger": {
            "type": "webhook",
            "application": credential.application,
            "credential": credential.pk,
            "events": ["invitee.created"],
            "options": {"scope": "organization"},
        },
        "steps": steps
        or [
            {"name": "document", "type": "map", "mapping": {"email": "{{ trigger.payload.email }}"}}
        ],
    }


def make_processflow(organization: Organization, credential: Credential, *, name="Bookings", **kw):
    """A triggered processflow (version 1, not deployed)."""
    return flow_services.create_processflow(
        organization,
        actor=owner_of(organization) or SYSTEM,
        name=name,
        definition=kw.pop("definition", None) or webhook_definition(credential, **kw),
    )


def make_deployment(processflow, **fields) -> Deployment:
    """An active deployment row of the latest version, without registering anything."""
    return Deployment.objects.create(
        organization_id=processflow.organization_id,
        processflow=processflow,
        version=processflow.versions.first(),
        **fields,
    )


def make_event(deployment: Deployment, payload: dict | None = None, **fields) -> TriggerEvent:
    payload = payload or {"event": "invitee.created", "payload": {"email": "ada@example.com"}}
    body = json.dumps(payload).encode()
    return TriggerEvent.objects.create(
        organization_id=deployment.organization_id,
        deployment=deployment,
        source=fields.pop("source", TriggerEvent.Source.WEBHOOK),
        event_name=payload.get("event", ""),
        dedupe_key=fields.pop("dedupe_key", f"test:{every(TriggerEvent).count()}"),
        body=body,
        **fields,
    )


def make_run(event: TriggerEvent, **fields) -> Run:
    deployment = event.deployment
    return Run.objects.create(
        organization_id=event.organization_id,
        processflow=deployment.processflow,
        version=deployment.version,
        deployment=deployment,
        event=event,
        **fields,
    )


def make_agent(organization: Organization, *, name: str = "Plant A", group=None):
    """An agent (not registered yet) in its own group, or in ``group``; returns the
    services' IssuedKey: ``.agent`` and the one-time ``.key``."""
    from portal.agents import services as agent_services

    return agent_services.create_agent(
        organization,
        actor=owner_of(organization),
        name=name,
        group_id=group.pk if group is not None else None,
    )


def register_agent(organization: Organization, *, name: str = "Plant A", group=None,
                   applications: list | None = None):  # fmt: skip
    """A registered agent and its secret (``.agent``, ``.secret``); ``applications`` is
    what it reports configured, e.g. ``[{"application": "calendly", "name": "main",
    "valid": True}]``."""
    from portal.agents import services as agent_services

    issued = make_agent(organization, name=name, group=group)
    registered = agent_services.register(key=issued.key, hostname="plant-a.local", version="1.0")
    if applications is not None:
        agent_services.heartbeat(registered.agent, applications=applications)
    return registered
