"""What connectors return: small immutable values the portal can store or serialise.

Every type has ``as_dict()`` giving plain JSON data; none of them ever holds a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One outbound request as the portal records it in a run step.

    ``url`` has no query string; ``query`` lists the parameters sent, with the values of
    secret or undeclared parameters masked. ``attempts`` counts tries (retries included),
    ``waited_s`` the time spent backing off between them, ``elapsed_ms`` the whole request.
    """

    method: str
    url: str
    status: int | None
    elapsed_ms: float
    attempts: int
    query: tuple[tuple[str, str], ...] = ()
    waited_s: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "query": [list(pair) for pair in self.query],
            "status": self.status,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "attempts": self.attempts,
            "waited_s": round(self.waited_s, 3),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of ``Connector.run_action``.

    ``data`` is the API's answer (for paginated lists: the last page's body with the item list
    replaced by every item collected); ``items`` is that list (None for non-list actions);
    ``pages`` counts pages fetched; ``truncated`` says more items existed beyond ``limit`` or
    the Runtime's page cap; ``requests`` summarises every request made, resource-function
    lookups included, in order.
    """

    action: str
    status: int
    data: Any
    items: list[Any] | None = None
    pages: int = 1
    truncated: bool = False
    requests: tuple[RequestSummary, ...] = ()
    #: The response headers of the action's own (last) request (non-paginated actions), for
    #: declarations that read what an API says there (e.g. a plan's rate limit).
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def request(self) -> dict[str, Any]:
        """The summary of the action's own (last) request, as a dict."""
        return self.requests[-1].as_dict() if self.requests else {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "status": self.status,
            "data": self.data,
            "items": self.items,
            "pages": self.pages,
            "truncated": self.truncated,
            "requests": [summary.as_dict() for summary in self.requests],
        }


@dataclass(frozen=True, slots=True)
class Account:
    """Who a credential reaches: what ``Connector.validate`` reports on success.

    For Calendly: the user's URI, name and email and their organization's URI. ``details``
    holds anything else worth showing (e.g. the REST connector's status code).
    """

    uri: str | None = None
    name: str | None = None
    email: str | None = None
    organization: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: What the account cannot do that users would otherwise learn only later (e.g. a plan
    #: without webhooks), as sentences to show beside "Connected".
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "name": self.name,
            "email": self.email,
            "organization": self.organization,
            **({"details": dict(self.details)} if self.details else {}),
            **({"warnings": list(self.warnings)} if self.warnings else {}),
        }


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook subscription at the application, in the connector-neutral shape."""

    uri: str
    callback_url: str
    events: tuple[str, ...]
    scope: str | None = None
    state: str | None = None
    organization: str | None = None
    user: str | None = None
    created_at: str | None = None
    #: The subscription options it was made or listed with (GitHub: owner and repo).
    options: dict[str, str] = field(default_factory=dict)
    #: The signing secret, when the application made it (never serialised).
    signing_key: Any = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        """The last segment of the URI (Calendly's webhook UUID)."""
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def active(self) -> bool:
        return self.state in (None, "active")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uri": self.uri,
            "callback_url": self.callback_url,
            "events": list(self.events),
            "scope": self.scope,
            "state": self.state,
            "organization": self.organization,
            "user": self.user,
            "created_at": self.created_at,
            "options": dict(self.options),
        }


@dataclass(frozen=True, slots=True)
class Verification:
    """The verdict on one webhook delivery: ``ok`` or not, and why (never an exception)."""

    ok: bool
    reason: str
    timestamp: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "timestamp": self.timestamp}
