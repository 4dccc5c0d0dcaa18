"""Secrets and the credentials handed to connectors.

A ``Secret`` hides its value from ``repr``, ``str``, f-strings and pickling; only ``reveal()``
gives it out, so a credential that ends up in a log line, a traceback's locals or a Celery
payload shows ``'********'`` instead. ``Credentials`` bundles the non-secret fields, the
secrets and a stable non-secret ``key`` (e.g. ``"credential:42"``) that caches and rate budgets
use. ``Scrubber`` removes secret values (and the encodings they travel in) from text the remote
server sends back, before that text reaches an exception message or a stored result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

MASK = "********"
REDACTED = "[redacted]"
# Shorter values are not meaningfully secret and scrubbing them would mangle every message.
_MIN_SCRUB_LENGTH = 4


class Secret:
    """A secret string that never shows itself by accident; ``reveal()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a string")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The secret value; use it only to build the request that needs it."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    # Immutable: copies may share the object. Pickling is refused so a secret cannot slip into
    # a task queue, a cache or a crash dump by being part of a larger object.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self

    def __reduce__(self):
        raise TypeError("Secret values are not serialisable; pass the credential's id instead")


def reveal(value: str | Secret | None) -> str | None:
    """The plain value of a Secret (or of a plain string, for callers that have one)."""
    return value.reveal() if isinstance(value, Secret) else value


@dataclass(frozen=True, eq=False)
class Credentials:
    """What a connector needs to act for one account: immutable, secrets wrapped.

    ``type`` names one of the connector's credential types (Calendly: ``"rest"``), ``fields``
    holds the non-secret values, ``secrets`` the secret ones (plain strings are wrapped in
    ``Secret`` on construction) and ``key`` is a stable, non-secret identifier such as
    ``"credential:42"`` used for caches and rate budgets.
    """

    type: str
    fields: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    key: str = "anonymous"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        wrapped = {name: Secret(value) for name, value in self.secrets.items()}
        object.__setattr__(self, "secrets", MappingProxyType(wrapped))

    def secret(self, name: str) -> str | None:
        """The revealed value of secret field ``name`` (None if absent or empty)."""
        value = self.secrets.get(name)
        return value.reveal() or None if value is not None else None

    def fingerprint(self, key: bytes) -> str:
        """A short digest of everything in the credential, so caches keyed on it never serve
        one token's lookups to another token stored under the same ``key``.

        Keyed with ``key`` (16 to 64 secret bytes, e.g. ``Runtime.fingerprint_key``): a
        plain hash in a cache key would let anyone who can list the cache confirm a guessed
        token offline.
        """
        if not 16 <= len(key) <= 64:
            raise ValueError("a fingerprint key has 16 to 64 bytes")
        digest = hashlib.blake2b(digest_size=8, key=key, person=b"connectors-cred")
        digest.update(self.type.encode())
        for name in sorted(self.fields):
            digest.update(f"\0f{name}\0{self.fields[name]}".encode())
        for name in sorted(self.secrets):
            digest.update(f"\0s{name}\0{self.secrets[name].reveal()}".encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        secrets = {name: Secret("") for name in self.secrets}
        return (
            f"Credentials(type={self.type!r}, key={self.key!r}, fields={dict(self.fields)!r}, "
            f"secrets={secrets!r})"
        )

    def __reduce__(self):
        raise TypeError("Credentials are not serialisable; pass the credential's id instead")


def _variants(value: str) -> set[str]:
    """The forms a secret travels in: raw, URL-encoded, JSON-escaped."""
    forms = {value, quote(value, safe=""), json.dumps(value)[1:-1]}
    return {form for form in forms if len(form) >= _MIN_SCRUB_LENGTH}


class Scrubber:
    """Replaces secret values in text or JSON data with ``[redacted]``.

    Built once per credential use from its secrets (plus derived values such as the Basic auth
    header's base64), then applied to anything the remote side sent back before it is shown.
    """

    __slots__ = ("_needle_bytes", "_needles")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        needles: set[str] = set()
        for value in set(secrets):
            if value:
                needles |= _variants(value)
        # Longest first so a secret containing another secret is replaced whole.
        self._needles = tuple(sorted(needles, key=len, reverse=True))
        self._needle_bytes = tuple(n.encode("utf-8", "replace") for n in self._needles)

    @classmethod
    def for_credentials(cls, credentials: Credentials, extra: Iterable[str] = ()) -> Scrubber:
        """A scrubber for every secret of ``credentials`` (and the Basic auth encodings)."""
        values = [secret.reveal() for secret in credentials.secrets.values()]
        username = credentials.fields.get("username")
        password = credentials.secret("password")
        if username is not None and password:
            pair = f"{username}:{password}".encode()
            values.append(base64.b64encode(pair).decode())
        return cls([*values, *extra])

    def with_values(self, values: Iterable[str]) -> Scrubber:
        """A scrubber that also hides ``values`` (e.g. a webhook signing key in a body)."""
        scrubber = Scrubber(values)
        combined = set(self._needles) | set(scrubber._needles)
        scrubber._needles = tuple(sorted(combined, key=len, reverse=True))
        scrubber._needle_bytes = tuple(n.encode("utf-8", "replace") for n in scrubber._needles)
        return scrubber

    def __bool__(self) -> bool:
        return bool(self._needles)

    def found_in(self, raw: bytes) -> bool:
        """Whether any secret occurs in ``raw`` (a cheap test before a deep scrub)."""
        return any(needle in raw for needle in self._needle_bytes)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        for needle in self._needles:
            if needle in value:
                value = value.replace(needle, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with every secret in its strings (and keys) replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value
