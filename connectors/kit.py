"""The connector kit: everything a declaration needs, in one import.

A new application is a folder ``connectors/<name>/`` whose ``__init__.py`` declares::

    from connectors import kit

    spec = kit.OpenApi.load(kit.here(__file__, "openapi/api.json"))
    connector = kit.Connector(
        name="acme", display_name="Acme", base_url="https://api.acme.example",
        credential_types=[kit.token("api_token", "API token", auth=kit.BearerToken)],
        actions=spec.actions(me="getMe", list_widgets="listWidgets"),
        validation_action="me", account=kit.account(uri="id", name="name", email="email"),
    )

The kit carries the weight: OpenAPI import (``OpenApi``), auth styles, pagination styles,
declared webhooks (``ActionWebhooks`` with signature, event-name and dedupe strategies) and,
for tests and demos, a sandbox built from declarations (``connectors.sandbox``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import paths
from .auth import ApiKeyHeader, BearerToken, NoAuth
from .base import Connector
from .errors import InvalidResponse
from .openapi import OpenApi
from .pagination import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PageNumberPagination,
)
from .results import Account
from .spec import Action, CredentialType, Field, Param, ResourceFunction
from .webhooks import (
    ActionWebhooks,
    DedupeKey,
    EventName,
    HmacSignature,
    PasscodeInBody,
    SubscriptionOption,
    SubscriptionShape,
)

__all__ = [
    "Account",
    "Action",
    "ActionWebhooks",
    "ApiKeyHeader",
    "BearerToken",
    "Connector",
    "CredentialType",
    "CursorPagination",
    "DedupeKey",
    "EventName",
    "Field",
    "HmacSignature",
    "LinkHeaderPagination",
    "NextUrlPagination",
    "NoAuth",
    "OffsetPagination",
    "OpenApi",
    "PageNumberPagination",
    "Param",
    "PasscodeInBody",
    "ResourceFunction",
    "SubscriptionOption",
    "SubscriptionShape",
    "account",
    "here",
    "token",
]


def here(module_file: str, relative: str) -> Path:
    """A path beside the declaring module (its vendored ``openapi/`` folder)."""
    return Path(module_file).resolve().parent / relative


def token(
    field: str,
    label: str,
    *,
    help: str = "",
    auth: Callable[..., Any] = BearerToken,
    header: str | None = None,
    name: str = "rest",
    type_label: str = "REST",
) -> CredentialType:
    """A credential type of one secret token (a personal access token, an API key), sent
    as ``Authorization: Bearer`` or, with ``auth=ApiKeyHeader``, in ``header``."""
    scheme = auth(field, header, label) if header else auth(field, label=label)
    return CredentialType(
        name=name,
        label=type_label,
        fields=(Field(field, label, help_text=help, secret=True),),
        auth=scheme,
        help_text=help,
    )


def account(
    *, uri: str, name: str | None = None, email: str | None = None, item: str | None = None,
    organization: str | None = None, details: tuple[str, ...] = (),
) -> Callable[[Any], Account]:  # fmt: skip
    """An ``account`` function for ``Connector``: the validation answer's fields at these
    paths (``item``: where the user object is in the answer)."""

    def read(data: Any) -> Account:
        user = paths.get(data, item) if item else data
        found = paths.get(user, uri) if isinstance(user, dict) else None
        if found in (None, ""):
            raise InvalidResponse(f"The answer has no {uri} to say whom the credential reaches.")

        def at(path: str | None) -> Any:
            return paths.get(user, path) if path else None

        return Account(
            uri=str(found),
            name=at(name),
            email=at(email),
            organization=at(organization),
            details={key: at(key) for key in details if at(key) is not None},
        )

    return read
