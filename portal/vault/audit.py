"""The credential audit history: who did what to a credential, and when. Never a secret."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from portal.tenancy.models import Membership
from portal.tenancy.permissions import Perm, require_perm
from portal.vault.models import Credential, CredentialEvent

logger = logging.getLogger("portal.vault")


@dataclass(frozen=True)
class Actor:
    """Who acts: a member (pages, API) or the system (tasks), for permissions and audit."""

    membership: Membership | None = None
    label: str = ""

    @property
    def user(self):
        return self.membership.user if self.membership else None

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(membership=None, label=f"system: {label}")

    def require(self, perm: Perm) -> None:
        """Members need ``perm``; the system may do anything."""
        if self.membership is not None:
            require_perm(self.membership, perm)


def as_actor(actor: Actor | Membership) -> Actor:
    return actor if isinstance(actor, Actor) else Actor(membership=actor)


def record(
    credential: Credential, action: str, *, actor: Actor | Membership, **detail
) -> CredentialEvent:
    """Append an audit entry; ``detail`` holds outcomes and messages, never secrets."""
    made = entry(credential, action, actor=actor, **detail)
    made.save(force_insert=True)
    return made


def entry(
    credential: Credential, action: str, *, actor: Actor | Membership, **detail
) -> CredentialEvent:
    """The audit entry :func:`record` appends, not saved yet (for a caller that writes many
    together)."""
    actor = as_actor(actor)
    return CredentialEvent(
        organization_id=credential.organization_id,
        credential=credential if credential.pk else None,
        credential_name=credential.name,
        application=credential.application,
        action=action,
        actor=actor.user,
        actor_label=actor.label or (actor.user.email if actor.user else ""),
        detail=detail,
    )


def record_decrypt_failure(credential: Credential, *, actor: Actor | None = None) -> None:
    """Log and audit a credential whose ciphertext does not open (never the value)."""
    logger.error(
        "credential %s of organization %s cannot be decrypted",
        credential.pk,
        credential.organization_id,
    )
    record(credential, CredentialEvent.Action.DECRYPT_FAILED, actor=actor or Actor.system("vault"))
