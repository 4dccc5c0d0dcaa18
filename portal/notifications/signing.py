"""Standard Webhooks signatures for outbound alert webhooks, with each rule's secret sealed
in the vault (encrypted like a credential secret, opened through the audited opener).

A request carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``; the secret is
``whsec_<base64 of the key bytes>``, so receivers can use any Standard Webhooks library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from portal.notifications.models import AlertRule
from portal.vault import sealed
from portal.vault.opener import open_sealed

PREFIX = "whsec_"
FIELD = "signing_secret"


def _binding(rule: AlertRule) -> str:
    return f"alert-rule:{rule.uid}"


def new_secret(rule: AlertRule) -> str:
    """A random secret sealed into ``rule`` (not saved); returned once, to be shown once."""
    value = PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    sealed.seal_value(rule, value)
    return value


def rule_secret(rule: AlertRule, *, purpose: str) -> str | None:
    return open_sealed(rule, purpose=purpose)


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for ``body``."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def register_with_vault() -> None:
    sealed.register(
        sealed.SealedSecret(
            model=AlertRule,
            data_key_field="signing_data_key",
            ciphertext_field="signing_secret_ciphertext",
            field=FIELD,
            binding=_binding,
        )
    )
