"""A credential's status as its uses show it: an application that answers 401 to a call made
with it has told us the credential no longer works, whatever the last validation said."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from portal.notifications.alerts import raise_alert
from portal.notifications.models import AlertKind
from portal.vault.models import Credential, CredentialStatus


def rejected(credential: Credential, message: str) -> bool:
    """Mark ``credential`` invalid because a call made with it was answered 401; True when
    that changed its status (and an alert was raised)."""
    message = message or "The application rejected the credential (401)."
    changed = (
        Credential.objects.for_tenant(credential.organization_id)
        .filter(pk=credential.pk)
        .exclude(status=CredentialStatus.INVALID)
        .update(status=CredentialStatus.INVALID, status_message=message, checked_at=timezone.now())
    )
    credential.status, credential.status_message = CredentialStatus.INVALID, message
    if changed:
        became_invalid(credential, message)
    return bool(changed)


def became_invalid(credential: Credential, message: str) -> None:
    """Tell the organization's alert rules that ``credential`` stopped working."""
    raise_alert(
        credential.organization_id,
        kind=AlertKind.CREDENTIAL_INVALID,
        subject=f"credential:{credential.pk}",
        title=f"Credential {credential.name!r} is invalid",
        message=message,
        link=reverse(
            "vault:credential",
            kwargs={"org": credential.organization.slug, "credential_id": credential.pk},
        ),
    )
