"""Our own signing key for each deployment's webhook subscription, kept in the vault.

The key is a sealed secret of the deployment (encrypted like a credential's, bound to its
row); it is opened only through the vault's audited opener, for a stated purpose.
"""

from __future__ import annotations

import secrets

from portal.processflows.models import Deployment
from portal.vault import sealed
from portal.vault.opener import open_sealed

FIELD = "signing_key"


def _binding(deployment: Deployment) -> str:
    return f"deployment:{deployment.uid}"


def new_signing_key(deployment: Deployment) -> str:
    """Generate a random signing key and store it encrypted on ``deployment`` (not saved).

    Returned once, to be sent to the application with the subscription.
    """
    value = secrets.token_urlsafe(32)
    store_signing_key(deployment, value)
    return value


def store_signing_key(deployment: Deployment, value: str) -> None:
    """Keep ``value`` as ``deployment``'s signing key, encrypted for it (not saved): a
    redeploy that keeps the application's subscription keeps verifying its deliveries."""
    sealed.seal_value(deployment, value)


def signing_key(deployment: Deployment, *, purpose: str) -> str | None:
    """The deployment's signing key, or None if it has none or it cannot be decrypted."""
    return open_sealed(deployment, purpose=purpose)


def register_with_vault() -> None:
    """Let key rotation re-encrypt signing keys along with credential secrets."""
    sealed.register(
        sealed.SealedSecret(
            model=Deployment,
            data_key_field="signing_data_key",
            ciphertext_field="signing_key_ciphertext",
            field=FIELD,
            binding=_binding,
        )
    )
