"""Webhook support: what a connector declares and implements to receive an application's events.

Subclass ``WebhookSupport`` in the connector's package (see ``connectors/calendly/webhooks.py``)
and pass an instance as ``Connector(webhooks=...)``. The portal then calls, through the
connector: ``create_subscription``/``list_subscriptions``/``get_subscription``/
``delete_subscription`` to manage subscriptions, ``verify_delivery`` on every delivery (it must
never raise: a forged request gets a reason, not a stack trace), and ``dedupe_key`` and
``event_name`` to store each event once under its name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from .errors import NotSupported
from .results import ActionResult, Subscription, Verification
from .runtime import Runtime
from .secrets import Credentials, Secret

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class Connector(Protocol):
    """What webhook support uses of its connector (``connectors.base.Connector`` is one):
    its name for messages, and its actions, through which subscriptions are managed."""

    display_name: str

    def run_action(
        self, name: str, credentials: Credentials, *, runtime: Runtime | None = None, **kw: Any
    ) -> ActionResult: ...


def header_values(headers: Headers, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive) in a mapping, an
    ``email.message``-style object or a list of pairs; repeated headers give several values."""
    wanted = name.lower()
    get_all = getattr(headers, "get_all", None)
    if callable(get_all):  # http.client / email.message headers keep repeats
        return [str(v) for v in (get_all(name) or [])]
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [str(value) for key, value in pairs if str(key).lower() == wanted]


def load_json(delivery: bytes | str | Mapping[str, Any] | None) -> Any:
    """A delivery body as parsed JSON (None if it is not JSON); parsed data passes through."""
    if delivery is None or isinstance(delivery, Mapping | list):
        return delivery
    try:
        return json.loads(delivery)
    except (TypeError, ValueError):
        return None


def body_digest(delivery: bytes | str | Mapping[str, Any] | None) -> str:
    """A SHA-256 of the delivery as sent (or of its canonical JSON when given parsed)."""
    if isinstance(delivery, bytes):
        raw = delivery
    elif isinstance(delivery, str):
        raw = delivery.encode("utf-8", "surrogatepass")
    else:
        raw = json.dumps(delivery, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(raw).hexdigest()


def key_text(signing_key: str | Secret | None) -> str | None:
    if isinstance(signing_key, Secret):
        return signing_key.reveal()
    return signing_key


class WebhookSupport:
    """Base class for a connector's webhooks; the defaults say "not supported".

    Declare ``events`` (the names users subscribe to), ``scopes`` and ``signature_header``;
    implement the subscription methods (usually by running the connector's own actions) and
    ``verify_delivery``, ``dedupe_key`` and ``event_name``.
    """

    events: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    signature_header: str | None = None
    #: Extra per-event notes for the portal (e.g. which scope an event needs).
    notes: Mapping[str, str] = {}
    #: The action that creates a subscription when a user runs it by hand (the seed's
    #: "Create Webhook Subscription" step), with the keys of its callback URL and signing
    #: key: the portal fills in the signing key of the flow that owns the callback URL.
    subscribe_action: str | None = None
    callback_key: str = "url"
    signing_key_key: str = "signing_key"
    #: An example delivery body per event name, as the application documents it: what a
    #: processflow designer shows as the trigger's sample before any real event arrived.
    event_examples: Mapping[str, Mapping[str, Any]] = {}

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
        **options: Any,
    ) -> Subscription:
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

    def list_subscriptions(
        self, connector: Connector, credentials: Credentials, *, scope: str, runtime: Runtime,
        **options: Any,
    ) -> list[Subscription]:  # fmt: skip
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

    def get_subscription(
        self, connector: Connector, credentials: Credentials, subscription: str, *, runtime: Runtime
    ) -> Subscription:
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

    def delete_subscription(
        self, connector: Connector, credentials: Credentials, subscription: str, *, runtime: Runtime
    ) -> None:
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

    def verify_delivery(
        self,
        headers: Headers,
        raw_body: bytes | str,
        signing_key: str | Secret | None,
        *,
        now: float | None = None,
        tolerance: float = 180,
    ) -> Verification:
        return Verification(False, "this application's deliveries cannot be verified")

    def dedupe_key(self, delivery: bytes | str | Mapping[str, Any]) -> str:
        return body_digest(delivery)

    def event_name(self, payload: bytes | str | Mapping[str, Any]) -> str:
        return ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": list(self.events),
            "scopes": list(self.scopes),
            "signature_header": self.signature_header,
            "notes": dict(self.notes),
            "subscribe_action": self.subscribe_action,
        }
