"""Connectors: declarative descriptions of applications and the safe execution of their actions.

Plain Python (no Django): the portal, the CLI (``python -m connectors``) and tests use the same
entry points::

    import connectors

    calendly = connectors.get_connector("calendly")
    credentials = connectors.Credentials(
        type="rest", secrets={"personal_access_token": token}, key="credential:42"
    )
    account = calendly.validate(credentials)
    result = calendly.run_action(
        "scheduled_events", credentials,
        filters=[("user", "~{GetUserUrl}~"), ("status", "active")], limit=50,
    )

Adding an application: a folder ``connectors/<name>/`` declaring a ``connector`` with the
kit (``connectors.kit``), usually from the application's OpenAPI document; see the README's
"Adding a connector" and ``connectors/figma/``. Errors are in ``connectors.errors``.
"""

import pkgutil

# pkgutil-style namespace: connectors/ directories elsewhere on sys.path add connectors.
__path__ = pkgutil.extend_path(__path__, __name__)

from . import errors
from .base import Connector
from .cache import TTLCache
from .pagination import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PageNumberPagination,
)
from .ratelimit import RateLimiter, TokenBucket, Unlimited
from .registry import all_connectors, get_connector, refresh
from .results import (
    Account,
    ActionResult,
    RequestSummary,
    Subscription,
    Verification,
)
from .runtime import Runtime
from .secrets import Credentials, Secret
from .spec import (
    Action,
    CredentialType,
    Field,
    Param,
    ResourceFunction,
)
from .webhooks import SubscriptionOption

__all__ = [
    "Account",
    "Action",
    "ActionResult",
    "Connector",
    "CredentialType",
    "Credentials",
    "CursorPagination",
    "Field",
    "LinkHeaderPagination",
    "NextUrlPagination",
    "OffsetPagination",
    "PageNumberPagination",
    "Param",
    "RateLimiter",
    "RequestSummary",
    "ResourceFunction",
    "Runtime",
    "Secret",
    "Subscription",
    "SubscriptionOption",
    "TTLCache",
    "TokenBucket",
    "Unlimited",
    "Verification",
    "all_connectors",
    "errors",
    "get_connector",
    "refresh",
]
