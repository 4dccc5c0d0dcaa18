"""Our own signing key for each deployment's webhook subscription, kept in the vault."""

from __future__ import annotations

import secrets

from portal.processflows.models import Deployment
from portal.vault import crypto, sealed
from portal.vault.keys import active_data_key, decrypt_secret, encrypt_secret

FIELD = "signing_key"


def _binding(deployment: Deployment) -> str:
    return f"deployment:{deployment.uid}"


def new_signing_key(deployment: Deployment) -> str:
    """Generate a random signing key and store it encrypted on ``deployment`` (not saved).

    Returned once, to be sent to the application with the subscription.
    """
    value = secrets.token_urlsafe(32)
    data_key = active_data_key(deployment.processflow.organization)
    deployment.signing_data_key = data_key
    deployment.signing_key_ciphertext = encrypt_secret(
        data_key, value, binding=_binding(deployment), field=FIELD
    )
    return value


def signing_key(deployment: Deployment) -> str | None:
    """The deployment's signing key, or None if it has none or it cannot be decrypted."""
    if not deployment.signing_key_ciphertext or deployment.signing_data_key is None:
        return None
    try:
        return decrypt_secret(
            deployment.signing_data_key,
            deployment.signing_key_ciphertext,
            binding=_binding(deployment),
            field=FIELD,
        )
    except crypto.VaultError:
        return None


def copy_signing_key(source: Deployment, target: Deployment) -> bool:
    """Give ``target`` (not saved) the signing key of ``source``, encrypted for ``target``:
    a redeploy that keeps the application's subscription keeps verifying its deliveries."""
    value = signing_key(source)
    if value is None:
        return False
    data_key = active_data_key(target.processflow.organization)
    target.signing_data_key = data_key
    target.signing_key_ciphertext = encrypt_secret(
        data_key, value, binding=_binding(target), field=FIELD
    )
    del value
    return True


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
