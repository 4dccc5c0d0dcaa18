"""Processflow definitions in the portal: the engine's checks (``flows.definition``), with
credentials referred to by their id in the organization, and problems as validation errors
that pages and the API show beside the field they concern."""

from __future__ import annotations

from django.core.exceptions import ValidationError

import flows
from flows.definition import credentials_used
from portal.tenancy.models import Organization
from portal.vault.models import Credential

__all__ = ["DefinitionError", "agent_credentials_used", "clean_definition", "credentials_used"]


def agent_credentials_used(definition: dict) -> list[tuple[str, str]]:
    """``(application, name)`` of each credential an agent-group definition names, trigger
    first, without repeats (on an agent a name is unique per application only)."""
    pairs = []
    trigger = definition.get("trigger", {})
    source = trigger.get("source") or {}
    for spec in [trigger, source, *definition.get("steps", [])]:
        if spec.get("credential") not in (None, "") and spec.get("application"):
            pair = (spec["application"], str(spec["credential"]))
            if pair not in pairs:
                pairs.append(pair)
    return pairs


class DefinitionError(ValidationError):
    """A definition problem, located by a path like ``steps[1].filters``."""


class OrganizationCredentials:
    """The organization's stored credentials, by id, as definitions refer to them."""

    def __init__(self, organization: Organization):
        self.organization = organization

    def find(self, ref: object) -> flows.CredentialInfo | str:
        if isinstance(ref, bool) or not isinstance(ref, int):
            return "Choose a credential."
        credential = (
            Credential.objects.for_tenant(self.organization)
            .filter(pk=ref)
            .values("name", "application")
            .first()
        )
        if credential is None:
            return f"Credential {ref} does not exist in this organization."
        return flows.CredentialInfo(ref, credential["name"], credential["application"])


def clean_definition(organization: Organization, definition, *, agent_group=None) -> dict:
    """Check and normalise a definition; raises DefinitionError naming the first problem.

    For a flow meant for an on-premise ``agent_group`` credentials are names on its agents,
    checked against what they report configured; an application they lack is remembered on
    the group (so call this outside a transaction that the refusal rolls back).
    """
    if agent_group is None:
        catalog = OrganizationCredentials(organization)
    else:
        from portal.agents.catalog import AgentGroupCredentials

        catalog = AgentGroupCredentials(agent_group)
    try:
        return flows.check(definition, credentials=catalog)
    except flows.DefinitionError as error:
        if agent_group is not None and catalog.missing:
            from portal.agents.services import request_applications

            request_applications(agent_group, catalog.missing)
        raise DefinitionError({error.where: [error.message]}) from None
