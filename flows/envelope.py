"""Envelope encryption, with nothing Django in it: the portal's vault and the on-premise
agent's local store both keep secrets with it.

In the portal, three layers:

- **Key-encryption keys (KEKs)** come only from ``PORTAL_ENCRYPTION_KEYS``
  (``id:base64-32-bytes,...``): the first encrypts, all decrypt. Never from ``SECRET_KEY``,
  never from the database.
- **Data keys**: one active per organization, random 256-bit, stored only wrapped (AES-GCM)
  by a KEK, with the KEK's id. The wrap is bound to the organization, so a wrapped key copied
  to another organization does not unwrap.
- **Secret values**: JSON (never pickle), AES-GCM under the organization's data key, with
  associated data binding the ciphertext to organization, credential and field: a ciphertext
  copied to another row, field or tenant fails to decrypt.

The agent has one key (its key file) and seals values with :func:`seal_value` /
:func:`open_value`, binding each to its own row and field the same way.

Every failure raises :class:`DecryptionError` (or :class:`MissingKeyError`); nothing here
ever returns ciphertext or falls back to plaintext.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class VaultError(Exception):
    """Base of the vault's errors. Messages never contain key material or secret values."""


class KeyConfigurationError(VaultError):
    """``PORTAL_ENCRYPTION_KEYS`` is malformed."""


class MissingKeyError(VaultError):
    """A data key is wrapped by a KEK whose id is not configured."""

    def __init__(self, kek_id: str):
        self.kek_id = kek_id
        super().__init__(
            f"Encryption key {kek_id!r} is not in PORTAL_ENCRYPTION_KEYS; data wrapped by it "
            "cannot be decrypted. Add it back (rotation needs the old key until it finishes)."
        )


class DecryptionError(VaultError):
    """Ciphertext failed authentication: wrong key, tampering, or moved to another row."""


@dataclass(frozen=True)
class KeyRing:
    """The configured KEKs, in order; ``primary`` encrypts, every key decrypts."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        """Parse ``id:base64key,id2:base64key2``; errors name the entry, never the key."""
        entries = [entry.strip() for entry in (value or "").split(",") if entry.strip()]
        if not entries:
            raise KeyConfigurationError("PORTAL_ENCRYPTION_KEYS is empty.")
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(entries, start=1):
            kek_id, sep, encoded = entry.partition(":")
            kek_id = kek_id.strip()
            if not sep or not _KEY_ID.match(kek_id):
                raise KeyConfigurationError(
                    f"PORTAL_ENCRYPTION_KEYS entry {position} must look like "
                    "'id:base64-of-32-bytes' with an id of letters, digits, '.', '_' or '-'."
                )
            try:
                key = base64.urlsafe_b64decode(_pad(encoded.strip()))
            except (binascii.Error, ValueError):
                raise KeyConfigurationError(
                    f"PORTAL_ENCRYPTION_KEYS key {kek_id!r} is not valid base64."
                ) from None
            if len(key) != KEY_BYTES:
                raise KeyConfigurationError(
                    f"PORTAL_ENCRYPTION_KEYS key {kek_id!r} must decode to {KEY_BYTES} bytes, "
                    f"not {len(key)}."
                )
            if any(existing == kek_id for existing, _ in keys):
                raise KeyConfigurationError(f"PORTAL_ENCRYPTION_KEYS names {kek_id!r} twice.")
            keys.append((kek_id, key))
        return cls(tuple(keys))

    @property
    def primary_id(self) -> str:
        return self.keys[0][0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(kek_id for kek_id, _ in self.keys)

    def get(self, kek_id: str) -> bytes:
        for candidate, key in self.keys:
            if candidate == kek_id:
                return key
        raise MissingKeyError(kek_id)

    def __repr__(self) -> str:  # never show key material
        return f"KeyRing(ids={list(self.ids)!r})"


def _pad(encoded: str) -> str:
    return encoded + "=" * (-len(encoded) % 4)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != FORMAT_VERSION:
        raise DecryptionError("Ciphertext is truncated or of an unknown format.")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise DecryptionError(
            "Ciphertext failed authentication (wrong key, tampered, or moved from another row)."
        ) from None


def _wrap_aad(organization_id: int) -> bytes:
    return f"portal:data-key:v1:organization={organization_id}".encode()


def _value_aad(organization_id: int, credential_id: str, field: str) -> bytes:
    return (
        f"portal:secret:v1:organization={organization_id}:credential={credential_id}:field={field}"
    ).encode()


def wrap_data_key(keyring: KeyRing, data_key: bytes, *, organization_id: int) -> tuple[str, bytes]:
    """Wrap a data key under the primary KEK; returns ``(kek_id, wrapped)``."""
    kek_id = keyring.primary_id
    return kek_id, _seal(keyring.get(kek_id), data_key, _wrap_aad(organization_id))


def unwrap_data_key(
    keyring: KeyRing, kek_id: str, wrapped: bytes, *, organization_id: int
) -> bytes:
    """Unwrap a data key; raises MissingKeyError or DecryptionError."""
    return _open(keyring.get(kek_id), bytes(wrapped), _wrap_aad(organization_id))


def seal_value(key: bytes, value, *, binding: str) -> bytes:
    """Encrypt a JSON-serialisable value under ``key``, bound to ``binding`` (e.g.
    ``"agent:credential=4:field=token"``): opening it under another binding fails."""
    plaintext = json.dumps(value, separators=(",", ":")).encode()
    return _seal(key, plaintext, binding.encode())


def open_value(key: bytes, sealed: bytes, *, binding: str):
    """Decrypt a value sealed by :func:`seal_value` with the same ``binding``; raises
    :class:`DecryptionError` otherwise."""
    return json.loads(_open(key, bytes(sealed), binding.encode()))


def encrypt_value(
    data_key: bytes, value, *, organization_id: int, credential_id: str, field: str
) -> bytes:
    """Encrypt a JSON-serialisable value bound to its organization, credential and field."""
    plaintext = json.dumps(value, separators=(",", ":")).encode()
    return _seal(data_key, plaintext, _value_aad(organization_id, credential_id, field))


def decrypt_value(
    data_key: bytes, sealed: bytes, *, organization_id: int, credential_id: str, field: str
):
    """Decrypt a value encrypted by :func:`encrypt_value` for the same binding."""
    plaintext = _open(data_key, bytes(sealed), _value_aad(organization_id, credential_id, field))
    return json.loads(plaintext)
