"""Reads of vault data, tenant-scoped; another tenant's credential is a 404."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from portal.tenancy.models import Organization
from portal.vault.models import Credential, CredentialEvent


def list_credentials(
    organization: Organization, *, application: str | None = None
) -> QuerySet[Credential]:
    credentials = Credential.objects.for_tenant(organization).select_related("created_by")
    if application:
        credentials = credentials.filter(application=application)
    return credentials.order_by("application", "type", "name")


def access_credential_by_id(
    organization: Organization, credential_id, *, for_update: bool = False
) -> Credential:
    credentials = Credential.objects.for_tenant(organization).select_related("data_key")
    if for_update:
        credentials = credentials.select_for_update(of=("self",))
    return get_object_or_404(credentials, pk=credential_id)


def list_events(
    organization: Organization, *, credential: Credential | None = None
) -> QuerySet[CredentialEvent]:
    events = CredentialEvent.objects.for_tenant(organization).select_related("actor")
    if credential is not None:
        events = events.filter(credential=credential)
    return events


def credential_for_use(organization: Organization, credential_id) -> Credential | None:
    """A credential a processflow refers to, ready to be opened, or None if it was deleted
    (a flow keeps running after its credential is gone, and must say so, not crash)."""
    return (
        Credential.objects.for_tenant(organization)
        .select_related("data_key")
        .filter(pk=credential_id)
        .first()
    )
