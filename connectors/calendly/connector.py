"""The Calendly connector (API v2, Personal Access Token): the one place it is declared."""

from __future__ import annotations

from typing import Any

from connectors.auth import BearerToken
from connectors.base import Connector
from connectors.errors import InvalidResponse
from connectors.results import Account
from connectors.spec import CredentialType, Field, ResourceFunction

from .actions import ACTIONS
from .webhooks import CalendlyWebhooks

PERSONAL_ACCESS_TOKEN = Field(
    name="personal_access_token",
    label="Personal Access Token",
    help_text=(
        "Create one in Calendly under Integrations & apps > API and webhooks. It acts as "
        "you: webhook subscriptions for the organization need an owner or admin."
    ),
    secret=True,
    required=True,
    max_length=4096,
)

CREDENTIAL_TYPES = (
    CredentialType(
        name="rest",
        label="REST",
        fields=(PERSONAL_ACCESS_TOKEN,),
        auth=BearerToken("personal_access_token", label="Personal Access Token"),
        help_text="Calendly API v2 with a Personal Access Token (Authorization: Bearer).",
    ),
)

RESOURCE_FUNCTIONS = (
    ResourceFunction(
        name="GetOrganizationUrl",
        action="users/me",
        path="resource.current_organization",
        label="My organization's URI",
        help="The URI of the organization the token's user belongs to (from GET /users/me).",
    ),
    ResourceFunction(
        name="GetUserUrl",
        action="users/me",
        path="resource.uri",
        label="My user URI",
        help="The URI of the token's user (from GET /users/me).",
    ),
)


def account(data: Any) -> Account:
    """The Account behind a GET /users/me answer."""
    user = data.get("resource") if isinstance(data, dict) else None
    if not isinstance(user, dict) or not isinstance(user.get("uri"), str):
        raise InvalidResponse("Calendly's answer to /users/me has no user in it.")
    return Account(
        uri=user["uri"],
        name=user.get("name"),
        email=user.get("email"),
        organization=user.get("current_organization"),
        details={k: user[k] for k in ("scheduling_url", "timezone", "slug") if user.get(k)},
    )


connector = Connector(
    name="calendly",
    display_name="Calendly",
    description="Scheduling: event types, scheduled events and invitees, webhook subscriptions.",
    documentation_url="https://developer.calendly.com/api-docs",
    base_url="https://api.calendly.com",
    credential_types=CREDENTIAL_TYPES,
    actions=ACTIONS,
    resource_functions=RESOURCE_FUNCTIONS,
    webhooks=CalendlyWebhooks(),
    validation_action="users/me",
    account=account,
    rate_limit_per_minute=500,  # per user on paid plans (50 on free plans)
    unauthorized_message=(
        "Calendly rejected the Personal Access Token (401). Check the token and validate again."
    ),
)
