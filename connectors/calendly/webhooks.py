"""Calendly webhooks: subscriptions through the connector's actions, signed deliveries.

Deliveries carry ``Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256 with the subscription's signing key over ``"<t>.<raw body>"``. Calendly sends no
event id, so a delivery's identity is its event name, its payload's ``uri`` and its
``created_at`` (the same for every retry of one event).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors.errors import FilterError, InvalidResponse
from connectors.results import Subscription, Verification
from connectors.runtime import Runtime
from connectors.secrets import Credentials, Secret
from connectors.webhooks import (
    Connector,
    DedupeKey,
    EventName,
    Headers,
    SubscriptionOption,
    WebhookSupport,
    header_values,
    key_text,
)

from .actions import SCOPES, WEBHOOK_EVENTS

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
_DIGITS = re.compile(r"^\d{1,12}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def signature(signing_key: str, raw_body: bytes, timestamp: int) -> str:
    """The ``v1`` value Calendly computes for ``raw_body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + raw_body
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def _subscription(resource: Any) -> Subscription:
    if not isinstance(resource, Mapping) or not isinstance(resource.get("uri"), str):
        raise InvalidResponse("Calendly's answer has no webhook subscription in it.")
    return Subscription(
        uri=resource["uri"],
        callback_url=str(resource.get("callback_url") or ""),
        events=tuple(resource.get("events") or ()),
        scope=resource.get("scope"),
        state=resource.get("state"),
        organization=resource.get("organization"),
        user=resource.get("user"),
        created_at=resource.get("created_at"),
    )


def _parse_header(value: str) -> tuple[dict[str, str], str | None]:
    """The header's parts by name, or a reason it is malformed."""
    parts: dict[str, str] = {}
    for piece in value.split(","):
        name, equals, content = piece.strip().partition("=")
        name, content = name.strip(), content.strip()
        if not equals or not name or not content:
            return {}, f"malformed {SIGNATURE_HEADER} header (expected t=<unix>,v1=<hex>)"
        if name in parts:
            return {}, f"{SIGNATURE_HEADER} header repeats its {name!r} part"
        parts[name] = content
    for required in ("t", "v1"):
        if required not in parts:
            return {}, f"{SIGNATURE_HEADER} header has no {required!r} part"
    return parts, None


@functools.cache
def _documented_examples() -> dict[str, dict[str, Any]]:
    """The delivery examples of the vendored OpenAPI document (``WebhookPayload``'s
    ``x-examples``), by event name; read once, on first use."""
    import yaml  # only the designer asks; importing it for every connector use costs

    path = Path(__file__).parent / "openapi" / "openapi.yaml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)
    examples = document["components"]["schemas"]["WebhookPayload"].get("x-examples", {})
    return {
        example["event"]: json.loads(json.dumps(example, default=str))
        for example in examples.values()
        if isinstance(example, dict) and isinstance(example.get("event"), str)
    }


# Calendly sends no event id: one event is its name, its payload's URI and its time.
DEDUPE = DedupeKey("calendly", body=("event", "payload.uri", "created_at"))
EVENT_NAME = EventName(body="event")


class CalendlyWebhooks(WebhookSupport):
    """Webhook subscriptions (organization or user scope) and signed deliveries."""

    @property
    def event_examples(self) -> Mapping[str, Mapping[str, Any]]:  # type: ignore[override]
        return _documented_examples()

    events = WEBHOOK_EVENTS
    options = (
        SubscriptionOption(
            "scope",
            "Scope",
            help="organization: every member's events (owners and admins); user: yours.",
            choices=SCOPES,
            default="organization",
        ),
        SubscriptionOption(
            "organization",
            "Organization",
            help="Organization URI (default: the credential's own).",
            required=False,
        ),
    )
    kept_headers = (SIGNATURE_HEADER.lower(),)
    signature_header = SIGNATURE_HEADER
    notes = {"routing_form_submission.created": "organization scope only"}
    subscribe_action = "webhook_subscription"

    # Subscriptions ----------------------------------------------------------------------------
    def read_subscription(self, data: Any) -> Subscription | None:
        resource = data.get("resource") if isinstance(data, Mapping) else None
        return _subscription(resource) if isinstance(resource, Mapping) else None

    def create_subscription(
        self,
        connector: Connector,
        credentials: Credentials,
        *,
        url: str,
        events: Sequence[str],
        scope: str,
        signing_key: str | Secret | None,
        runtime: Runtime,
        organization: str | None = None,
        user: str | None = None,
        **options: Any,
    ) -> Subscription:
        """POST /webhook_subscriptions; the organization (and for user scope the user)
        default to the credential's own. ``AlreadyExists`` when the URL is subscribed."""
        if options:
            raise FilterError(f"Unexpected options: {', '.join(sorted(options))}.")
        if isinstance(events, str):
            events = [events]
        rows: list[tuple[str, Any]] = [("url", url), ("scope", scope)]
        rows += [("events[]", event) for event in events]
        if organization:
            rows.append(("organization", organization))
        if scope == "user":
            rows.append(("user", user or "~{GetUserUrl}~"))
        key = key_text(signing_key)
        if key:
            rows.append(("signing_key", key))
        result = connector.run_action(
            "webhook_subscription", credentials, filters=rows, runtime=runtime
        )
        return _subscription((result.data or {}).get("resource"))

    def list_subscriptions(
        self,
        connector: Connector,
        credentials: Credentials,
        *,
        scope: str,
        runtime: Runtime,
        organization: str | None = None,
        user: str | None = None,
        **options: Any,
    ) -> list[Subscription]:
        if options:
            raise FilterError(f"Unexpected options: {', '.join(sorted(options))}.")
        rows: list[tuple[str, Any]] = [("scope", scope)]
        if organization:
            rows.append(("organization", organization))
        if scope == "user":
            rows.append(("user", user or "~{GetUserUrl}~"))
        result = connector.run_action(
            "webhook_subscriptions", credentials, filters=rows, runtime=runtime
        )
        return [_subscription(item) for item in result.items or []]

    def get_subscription(
        self, connector: Connector, credentials: Credentials, subscription: str, *, runtime: Runtime
    ) -> Subscription:
        result = connector.run_action(
            "webhook_subscription_get",
            credentials,
            filters=[("uuid", subscription)],
            runtime=runtime,
        )
        return _subscription((result.data or {}).get("resource"))

    def delete_subscription(
        self, connector: Connector, credentials: Credentials, subscription: str, *, runtime: Runtime
    ) -> None:
        connector.run_action(
            "webhook_subscription_delete", credentials, filters=[("uuid", subscription)],
            runtime=runtime,
        )  # fmt: skip

    # Deliveries -------------------------------------------------------------------------------
    def verify_delivery(
        self,
        headers: Headers,
        raw_body: bytes | str,
        signing_key: str | Secret | None,
        *,
        now: float | None = None,
        tolerance: float = 180,
    ) -> Verification:
        """Check the signature over the exact bytes received, then the timestamp's age.

        Reasons are specific (missing, malformed or repeated parts, non-integer, stale or
        future timestamp, wrong signature) so the portal can show why a delivery was refused.
        """
        values = header_values(headers, SIGNATURE_HEADER)
        if not values:
            return Verification(False, f"missing {SIGNATURE_HEADER} header")
        if len(values) > 1:
            return Verification(False, f"more than one {SIGNATURE_HEADER} header")
        parts, problem = _parse_header(values[0])
        if problem is not None:
            return Verification(False, problem)
        if not _DIGITS.match(parts["t"]):
            return Verification(False, f"the timestamp t={parts['t'][:20]!r} is not an integer")
        timestamp = int(parts["t"])
        key = key_text(signing_key)
        if not key:
            return Verification(False, "no signing key is configured for this webhook", timestamp)
        body = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body)
        expected = signature(key, body, timestamp)
        given = parts["v1"]
        if not _HEX.match(given) or not hmac.compare_digest(expected, given.lower()):
            return Verification(False, "the signature does not match the body", timestamp)
        current = time.time() if now is None else now
        age = current - timestamp
        if age > tolerance:
            return Verification(
                False, f"the timestamp is {age:.0f} s old (tolerance {tolerance:g} s)", timestamp
            )
        if -age > tolerance:
            return Verification(
                False,
                f"the timestamp is {-age:.0f} s in the future (tolerance {tolerance:g} s)",
                timestamp,
            )
        return Verification(True, "signature verified", timestamp)

    def dedupe_key(self, delivery: bytes | str | Mapping[str, Any], headers: Headers = ()) -> str:
        """``calendly:<sha256 of [event, payload uri, created_at]>``: identical for every
        retry of one event, different for two events on the same invitee. Bodies that are
        not Calendly's shape fall back to a digest of the body itself."""
        return DEDUPE.key(delivery, headers)

    def event_name(self, payload: bytes | str | Mapping[str, Any], headers: Headers = ()) -> str:
        return EVENT_NAME.read(payload, headers)
