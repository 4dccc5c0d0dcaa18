"""The generic REST connector: forward documents to an HTTP API the user names.

Its base URL comes from the credential, so every destination passes the Runtime's network
policy (``connectors.netguard``): loopback, private, link-local, unique-local, multicast and
cloud-metadata addresses are refused unless allowed, on every connection, after DNS
resolution. Redirects are never followed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from connectors.base import Connector
from connectors.errors import FilterError
from connectors.filters import path_segment
from connectors.results import Account
from connectors.runtime import DEFAULT_RUNTIME, Runtime
from connectors.secrets import Credentials
from connectors.spec import CredentialType, Field, Param

from .actions import ACTIONS
from .auth import AUTH_TYPES, DEFAULT_API_KEY_HEADER, RestAuth

FIELDS = (
    Field(
        "base_url",
        "Base URL",
        help_text="e.g. https://api.example.com/v1 : actions add their path to it.",
        max_length=2048,
    ),
    Field(
        "auth_type",
        "Authentication",
        help_text="none, bearer (token), basic (user name and password) or api_key.",
        default="none",
        choices=AUTH_TYPES,
    ),
    Field("username", "User name", help_text="For basic authentication.", required=False),
    Field(
        "api_key_header",
        "API key header",
        help_text=f"Header that carries the API key (default {DEFAULT_API_KEY_HEADER}).",
        required=False,
        default=DEFAULT_API_KEY_HEADER,
        max_length=100,
    ),
    Field(
        "health_path",
        "Health check path",
        help_text="Path that validation GETs (default: the base URL itself).",
        required=False,
        max_length=512,
    ),
    Field(
        "token", "Bearer token", help_text="For bearer authentication.", secret=True, required=False
    ),
    Field(
        "password", "Password", help_text="For basic authentication.", secret=True, required=False
    ),
    Field(
        "api_key", "API key", help_text="For api_key authentication.", secret=True, required=False
    ),
)

_HEALTH = Param(
    "health_path", "path", {"type": "string"}, style="subpath", label="Health check path"
)


class RestConnector(Connector):
    """A connector whose destination is the credential's ``base_url``."""

    def validate(self, credentials: Credentials, runtime: Runtime | None = None) -> Account:
        """GET the base URL (or its health path); any 2xx answer validates, and the status
        is reported. 401/403 and outages raise the usual typed errors."""
        runtime = runtime or DEFAULT_RUNTIME
        base = self.base_url_for(credentials, runtime)
        try:
            health = path_segment(_HEALTH, credentials.fields.get("health_path") or "")
        except FilterError as error:
            raise FilterError(f"Health check path: {error}") from None
        with self.session(credentials, runtime) as client:
            response = client.send("GET", base + health, idempotent=True)
        host = urlsplit(base).hostname
        return Account(
            uri=base, name=host, details={"status": response.status, "checked": base + health}
        )


connector = RestConnector(
    name="rest",
    display_name="REST API",
    description="Any HTTP API that speaks JSON: forward documents, read answers.",
    base_url_field="base_url",
    credential_types=(
        CredentialType(
            name="rest",
            label="REST",
            fields=FIELDS,
            auth=RestAuth(),
            help_text="A base URL and, if the destination needs it, a token, password or API key.",
        ),
    ),
    actions=ACTIONS,
    unauthorized_message=(
        "The destination rejected the credentials (401). Check them and validate again."
    ),
    guard_destinations=True,
    idempotency_header="Idempotency-Key",
    json_only=False,
)
