"""How credentials become request headers.

An auth object declares its ``kind`` (shown to the portal) and builds the headers for one
credential; it also lists the values that must be scrubbed from anything the server sends
back. Values are checked for whitespace and control characters first: ``requests`` would
otherwise reject the header with an exception message quoting the secret.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from .errors import InvalidCredentials
from .secrets import Credentials

_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def checked_secret(credentials: Credentials, name: str, label: str) -> str:
    """The secret ``name``, stripped; ``InvalidCredentials`` if absent or not header-safe."""
    value = (credentials.secret(name) or "").strip()
    if not value:
        raise InvalidCredentials(f"The credential has no {label}; add it and validate again.")
    if _UNSAFE.search(value):
        raise InvalidCredentials(
            f"The {label} contains spaces or control characters; paste it again."
        )
    return value


@dataclass(frozen=True)
class NoAuth:
    """No authentication headers."""

    kind: str = "none"

    def headers(self, credentials: Credentials) -> dict[str, str]:
        return {}

    def secret_values(self, credentials: Credentials) -> list[str]:
        return []


@dataclass(frozen=True)
class BearerToken:
    """``Authorization: Bearer <secret field>`` (Calendly's Personal Access Token)."""

    field: str
    label: str = "token"
    kind: str = "bearer"

    def headers(self, credentials: Credentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {checked_secret(credentials, self.field, self.label)}"}

    def secret_values(self, credentials: Credentials) -> list[str]:
        return [v for v in [credentials.secret(self.field)] if v]


def basic_header(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic authentication."""
    pair = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class ApiKeyHeader:
    """``<header>: <secret field>`` (Figma's ``X-Figma-Token``)."""

    field: str
    header: str
    label: str = "API key"
    kind: str = "api_key"

    def headers(self, credentials: Credentials) -> dict[str, str]:
        return {self.header: checked_secret(credentials, self.field, self.label)}

    def secret_values(self, credentials: Credentials) -> list[str]:
        return [v for v in [credentials.secret(self.field)] if v]
