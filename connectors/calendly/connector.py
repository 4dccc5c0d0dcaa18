"""The Calendly connector (API v2, Personal Access Token): the one place it is declared."""

from __future__ import annotations

from typing import Any

from connectors.auth import BearerToken
from connectors.base import Connector
from connectors.errors import InvalidResponse
from connectors.results import Account, ActionResult
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


#: Calendly allows 500 requests a minute per user on paid plans and 50 on free ones, and says
#: which in ``X-RateLimit-Limit`` on every answer: the only sign of the plan that
#: ``GET /users/me`` gives.
FREE_PLAN_RATE_LIMIT = 50


def plan_warnings(result: ActionResult) -> list[str]:
    """Warn when the token's account is on a free plan: Calendly refuses webhook
    subscriptions below Professional (403), which would otherwise surface only at deploy."""
    try:
        limit = int(result.headers.get("x-ratelimit-limit", ""))
    except ValueError:
        return []
    if limit > FREE_PLAN_RATE_LIMIT:
        return []
    return [
        "This account is on a free Calendly plan: Calendly allows webhook subscriptions "
        "only from the Professional plan up, so triggered processflows cannot use this "
        "credential (polling processflows and actions can)."
    ]


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
    account_warnings=plan_warnings,
    rate_limit_per_minute=500,  # per user on paid plans (50 on free plans)
    unauthorized_message=(
        "Calendly rejected the Personal Access Token (401). Check the token and validate again."
    ),
)
