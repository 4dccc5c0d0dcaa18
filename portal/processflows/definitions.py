"""Processflow definitions in the portal: the engine's checks (``flows.definition``), with
credentials referred to by their id in the organization, and problems as validation errors
that pages and the API show beside the field they concern."""

from __future__ import annotations

from django.core.exceptions import ValidationError

import flows
from flows.definition import credentials_used
from portal.tenancy.models import Organization
from portal.vault.models import Credential

__all__ = ["DefinitionError", "clean_definition", "credentials_used"]


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


def clean_definition(organization: Organization, definition) -> dict:
    """Check and normalise a definition; raises DefinitionError naming the first problem."""
    try:
        return flows.check(definition, credentials=OrganizationCredentials(organization))
    except flows.DefinitionError as error:
        raise DefinitionError({error.where: [error.message]}) from None
