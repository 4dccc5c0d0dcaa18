"""Periodic re-validation: a revoked token is noticed before a processflow fails on it."""

from __future__ import annotations

from celery import shared_task

from portal.vault.models import Credential
from portal.vault.services import REVALIDATE_CREDENTIAL, revalidate


@shared_task(name="portal.maintenance.revalidate_credentials")
def revalidate_credentials() -> int:
    """Queue one re-validation per credential (one slow application cannot hold up the rest)."""
    ids = list(Credential.objects.values_list("pk", flat=True))
    for credential_id in ids:
        revalidate_credential.delay(credential_id)
    return len(ids)


@shared_task(name=REVALIDATE_CREDENTIAL)
def revalidate_credential(credential_id: int, reason: str = "periodic validation") -> str | None:
    """Re-validate one credential by id; a credential deleted meanwhile is skipped."""
    credential = Credential.objects.select_related("data_key").filter(pk=credential_id).first()
    if credential is None:
        return None
    return revalidate(credential, label=reason).status
