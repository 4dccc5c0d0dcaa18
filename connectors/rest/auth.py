"""Authentication of the generic REST connector, chosen per credential by ``auth_type``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.auth import basic_header, checked_secret
from connectors.errors import InvalidCredentials
from connectors.secrets import Credentials

AUTH_TYPES = ("none", "bearer", "basic", "api_key")
DEFAULT_API_KEY_HEADER = "X-API-Key"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Headers the transport or the connector itself must control.
_RESERVED = frozenset(
    {
        "host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
        "trailer", "content-type", "accept", "accept-encoding", "idempotency-key",
        "proxy-authorization", "cookie",
    }
)  # fmt: skip


@dataclass(frozen=True)
class RestAuth:
    """``auth_type`` none | bearer (``token``) | basic (``username`` + ``password``) |
    api_key (``api_key`` sent in the ``api_key_header`` header, default X-API-Key)."""

    kind: str = "none | bearer | basic | api_key"

    def mode(self, credentials: Credentials) -> str:
        mode = (credentials.fields.get("auth_type") or "none").strip().lower()
        if mode not in AUTH_TYPES:
            raise InvalidCredentials(
                f"Authentication must be one of {', '.join(AUTH_TYPES)}; got {mode[:40]!r}."
            )
        return mode

    def headers(self, credentials: Credentials) -> dict[str, str]:
        mode = self.mode(credentials)
        if mode == "bearer":
            return {"Authorization": f"Bearer {checked_secret(credentials, 'token', 'token')}"}
        if mode == "basic":
            username = (credentials.fields.get("username") or "").strip()
            if not username or ":" in username:
                raise InvalidCredentials(
                    "Basic authentication needs a user name without ':'; add it and validate again."
                )
            password = checked_secret(credentials, "password", "password")
            return {"Authorization": basic_header(username, password)}
        if mode == "api_key":
            header = (credentials.fields.get("api_key_header") or DEFAULT_API_KEY_HEADER).strip()
            if not _HEADER_NAME.match(header) or header.lower() in _RESERVED:
                raise InvalidCredentials(
                    f"{header[:60]!r} cannot carry the API key; use a header such as "
                    f"{DEFAULT_API_KEY_HEADER}."
                )
            return {header: checked_secret(credentials, "api_key", "API key")}
        return {}

    def secret_values(self, credentials: Credentials) -> list[str]:
        return [v for v in (credentials.secret(n) for n in ("token", "password", "api_key")) if v]
