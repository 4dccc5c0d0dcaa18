"""The one audited way to open secrets: credentials' and the sealed secrets other apps keep.

Whatever needs a stored credential's plaintext (validating it, running an action, a run's
step, a webhook subscription) opens it here, once per use: the secrets are decrypted into
a ``flows.OpenedCredential`` that lives only as long as the ``with`` block, and when the
block ends the use is written to the credential's audit history: who (a member, or the
system and its purpose), what (the action and its outcome, as the caller reported it), why
(the purpose). A credential whose ciphertext does not open is audited too, and refused
with a message a person can act on.

Sealed secrets (``portal.vault.sealed``: a deployment's webhook signing key) are opened
with :func:`open_sealed`. They are used by the system only (intake verifies every delivery
with one), so each use is recorded on the ``portal.vault.audit`` log rather than in a
credential's history, at most once per row, purpose and hour in each process: enough to
trace who opened which key why, without a write per webhook delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import connectors
import flows
from flows import envelope as crypto
from portal.tenancy.models import Membership
from portal.vault import audit, health, sealed
from portal.vault.keys import decrypt_secret, open_secrets
from portal.vault.models import Credential, CredentialEvent

logger = logging.getLogger("portal.vault.audit")

# A sealed secret's use is logged once per (row, purpose) per this many seconds per process.
SEALED_AUDIT_SECONDS = 3600.0
_sealed_logged: dict[tuple, float] = {}
_sealed_lock = threading.Lock()

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
    record: Callable[..., object] | None = None,
) -> Iterator[flows.OpenedCredential]:
    """Decrypt ``credential`` (only its secret ``fields``, if given) for the ``with`` block;
    audit the use when it ends.

    ``actor`` defaults to the system acting for ``purpose``. ``audit_as`` is the audit
    action written (None when the caller writes its own entry, as validation does).
    ``record`` writes the entry, with :func:`audit.record`'s arguments (default: that
    function, at once; a Cloud worker's run threads hand it to their writer thread).
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
            (record or audit.record)(credential, audit_as, actor=who, **detail)
        if opened.outcome.get("status") == 401:
            # The application says the credential no longer works: a run step, a Test
            # step or a subscription call shows it as surely as a validation would.
            health.rejected(credential, opened.outcome.get("message", ""))


def open_sealed(instance, *, purpose: str) -> str | None:
    """The sealed secret kept on ``instance`` (a model registered in ``vault.sealed``), or
    None when it has none or it cannot be decrypted (logged as an error). Audited on the
    ``portal.vault.audit`` log, sampled as the module says."""
    spec = sealed.spec_for(type(instance))
    ciphertext = getattr(instance, spec.ciphertext_field)
    data_key = getattr(instance, spec.data_key_field)
    if not ciphertext or data_key is None:
        return None
    label = f"{type(instance).__name__} {instance.pk} of organization {instance.organization_id}"
    try:
        value = decrypt_secret(
            data_key, ciphertext, binding=spec.binding(instance), field=spec.field
        )
    except crypto.VaultError:
        logger.error("the %s of %s cannot be decrypted", spec.field, label)
        return None
    now = time.monotonic()
    mark = (type(instance).__name__, instance.pk, purpose)
    with _sealed_lock:
        due = now - _sealed_logged.get(mark, -SEALED_AUDIT_SECONDS) >= SEALED_AUDIT_SECONDS
        if due:
            _sealed_logged[mark] = now
    if due:
        logger.info("%s of %s opened by the system: %s", spec.field, label, purpose)
    return value
