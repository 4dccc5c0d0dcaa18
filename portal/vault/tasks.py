"""Periodic re-validation: a revoked token is noticed before a processflow fails on it."""

from __future__ import annotations

import logging

from celery import shared_task

from portal.vault.models import Credential
from portal.vault.services import REVALIDATE_CREDENTIAL, revalidate

logger = logging.getLogger(__name__)


@shared_task(name="portal.maintenance.revalidate_credentials")
def revalidate_credentials() -> int:
    """Queue one re-validation per credential (one slow application cannot hold up the rest)."""
    ids = list(
        Credential.objects.unscoped(
            "the periodic re-validation checks every credential"
        ).values_list("organization_id", "pk")
    )
    for organization_id, credential_id in ids:
        revalidate_credential.delay(organization_id, credential_id)
    return len(ids)


@shared_task(name=REVALIDATE_CREDENTIAL)
def revalidate_credential(
    organization_id: int,
    credential_id: int | str | None = None,
    reason: str = "periodic validation",
) -> str | None:
    """Re-validate one credential by id; a credential deleted meanwhile is skipped."""
    if not isinstance(credential_id, int):
        # A message queued before tasks carried their organization: the periodic
        # re-validation checks the credential anyway.
        logger.info("skipped a re-validation message without its organization")
        return None
    credential = (
        Credential.objects.for_tenant(organization_id)
        .select_related("data_key")
        .filter(pk=credential_id)
        .first()
    )
    if credential is None:
        return None
    return revalidate(credential, label=reason).status
