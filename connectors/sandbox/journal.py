"""What the sandbox saw and did: recorded API exchanges and webhook deliveries.

Tests assert on these instead of on log output: an ``Exchange`` is one API call exactly as it
crossed the wire (the conformance checks replay them against the application's OpenAPI
document); a ``Delivery`` is one webhook event on its way to one
subscription, with every attempt. Their ``repr`` hides credentials so a failing assertion never
prints a bearer token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

# Credentials and signatures of every application the sandboxes play (lower-case names).
_SECRET_HEADERS = (
    "authorization",
    "x-figma-token",
    "calendly-webhook-signature",
    "x-hub-signature-256",
)


def _redacted(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


@dataclass
class Exchange:
    """One API request and the answer the sandbox gave (or broke off)."""

    method: str
    path: str
    query: dict[str, list[str]]
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    faulted: bool = False
    fault_kind: str | None = None
    user_uuid: str | None = None  # whose token authenticated it, if any
    started_at: float = 0.0  # time.time() when the request line was read
    duration: float = 0.0  # seconds until the answer was written

    def json(self) -> Any:
        """The response body parsed as JSON."""
        return json.loads(self.response_body)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A response header, looked up case-insensitively."""
        wanted = name.lower()
        return next((v for k, v in self.response_headers.items() if k.lower() == wanted), default)

    def __repr__(self) -> str:
        query = "&".join(f"{k}={v}" for k, vs in self.query.items() for v in vs)
        target = f"{self.path}?{query}" if query else self.path
        fault = f" faulted={self.fault_kind}" if self.faulted else ""
        return f"<Exchange {self.method} {target} -> {self.status}{fault}>"

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary with credentials redacted (for admin views and debugging)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "request_headers": _redacted(self.request_headers),
            "status": self.status,
            "faulted": self.faulted,
            "fault_kind": self.fault_kind,
            "duration": self.duration,
        }


@dataclass
class Delivery:
    """One webhook event sent (and possibly re-sent) to one subscription's callback URL.

    ``attempts`` holds ``(HTTP status or error text, time.time())`` per try; ``headers`` are the
    latest attempt's (each retry carries a fresh signature timestamp, the body never changes).
    """

    id: str
    subscription_uri: str
    url: str
    event: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    attempts: list[tuple[int | str, float]] = field(default_factory=list)
    state: str = "pending"  # pending | delivered | failed

    def json(self) -> Any:
        """The delivered body parsed as JSON."""
        return json.loads(self.body)

    def snapshot(self) -> Delivery:
        """A copy that later attempts will not change under the caller's feet."""
        return replace(self, headers=dict(self.headers), attempts=list(self.attempts))

    def __repr__(self) -> str:
        return (
            f"<Delivery {self.id} {self.event} -> {self.url} {self.state} "
            f"attempts={[a[0] for a in self.attempts]}>"
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly copy (body as text) for the admin API; signatures are included
        because a separate process needs them to verify what its receiver got."""
        return {
            "id": self.id,
            "subscription_uri": self.subscription_uri,
            "url": self.url,
            "event": self.event,
            "body": self.body.decode("utf-8"),
            "headers": dict(self.headers),
            "attempts": [list(a) for a in self.attempts],
            "state": self.state,
        }
