"""The one audited way to open a credential's secrets.

Whatever needs a stored credential's plaintext (validating it, running an action, a run's
step, a webhook subscription) opens it here, once per use: the secrets are decrypted into
a ``flows.OpenedCredential`` that lives only as long as the ``with`` block, and when the
block ends the use is written to the credential's audit history: who (a member, or the
system and its purpose), what (the action and its outcome, as the caller reported it), why
(the purpose). A credential whose ciphertext does not open is audited too, and refused
with a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import connectors
import flows
from portal.tenancy.models import Membership
from portal.vault import audit, crypto
from portal.vault.keys import open_secrets
from portal.vault.models import Credential, CredentialEvent

CANNOT_DECRYPT = (
    "The stored secret cannot be decrypted. Replace the secret to use this credential again."
)


def credential_key(credential: Credential) -> str:
    """The non-secret key that rate budgets and resource caches use for ``credential``."""
    return f"credential:{credential.pk}"


@contextmanager
def open_credential(
    credential: Credential,
    *,
    purpose: str,
    actor: audit.Actor | Membership | None = None,
    audit_as: str | None = CredentialEvent.Action.USED,
    fields: Iterable[str] | None = None,
) -> Iterator[flows.OpenedCredential]:
    """Decrypt ``credential`` (only its secret ``fields``, if given) for the ``with`` block;
    audit the use when it ends.

    ``actor`` defaults to the system acting for ``purpose``. ``audit_as`` is the audit
    action written (None when the caller writes its own entry, as validation does).
    Raises ``flows.CredentialUnavailable`` when the secrets cannot be decrypted.
    """
    who = audit.as_actor(actor) if actor is not None else audit.Actor.system(purpose)
    try:
        secrets = open_secrets(credential, fields)
    except crypto.VaultError:
        audit.record_decrypt_failure(credential, actor=who)
        raise flows.CredentialUnavailable(CANNOT_DECRYPT) from None
    opened = flows.OpenedCredential(
        application=credential.application,
        credentials=connectors.Credentials(
            type=credential.type,
            fields=dict(credential.fields),
            secrets=secrets,
            key=credential_key(credential),
        ),
        secret_values=secrets.values(),
    )
    del secrets
    try:
        yield opened
    finally:
        if audit_as is not None:
            detail = dict(opened.outcome)
            if "action" in detail:  # the connector action, beside the audit entry's own
                detail["step_action"] = detail.pop("action")
            audit.record(credential, audit_as, actor=who, **detail)
