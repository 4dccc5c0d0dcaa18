"""Webhook support: what a connector declares and implements to receive an application's events.

A connector passes a ``WebhookSupport`` as ``Connector(webhooks=...)``: ``ActionWebhooks``
(declared, below: subscriptions through the connector's own actions, deliveries checked by
small strategies) or a subclass with hand-written methods (``connectors/calendly/webhooks.py``).
The portal reads the declarations (events, subscription options, delivery headers worth
keeping, who makes the signing secret) and calls, through the connector:
``create_subscription``/``list_subscriptions``/``get_subscription``/``delete_subscription``,
``verify_delivery`` on every delivery (it must never raise: a forged request gets a reason,
not a stack trace), and ``dedupe_key`` and ``event_name`` (from the headers and the body) to
store each event once under its name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from . import paths
from .errors import AlreadyExists, ApiError, FilterError, InvalidResponse, NotSupported
from .results import ActionResult, Subscription, Verification
from .runtime import Runtime
from .secrets import Credentials, Secret

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class Connector(Protocol):
    """What webhook support uses of its connector (``connectors.base.Connector`` is one):
    its name for messages, and its actions, through which subscriptions are managed."""

    display_name: str
    actions: Mapping[str, Any]

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


def _header(headers: Headers, name: str) -> str | None:
    values = header_values(headers, name)
    return values[0] if len(values) == 1 else None


# Declarations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubscriptionOption:
    """One choice a subscription takes beside its URL and events (Calendly: ``scope``;
    GitHub: ``owner`` and ``repo``). The portal's editor asks for it; definitions keep it."""

    name: str
    label: str
    help: str = ""
    choices: tuple[str, ...] = ()
    default: str | None = None
    required: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "help": self.help,
                "choices": list(self.choices), "default": self.default,
                "required": self.required}  # fmt: skip


# Delivery strategies --------------------------------------------------------------------------
@dataclass(frozen=True)
class HmacSignature:
    """An HMAC-SHA256 of the raw body in one header, e.g. GitHub's
    ``X-Hub-Signature-256: sha256=<hex>``. No timestamp: a replayed delivery is a duplicate,
    dropped by its dedupe key."""

    header: str
    prefix: str = "sha256="

    def sign(self, signing_key: str, raw_body: bytes) -> str:
        digest = hmac.new(signing_key.encode(), raw_body, hashlib.sha256).hexdigest()
        return self.prefix + digest

    def verify(
        self, headers: Headers, raw_body: bytes, signing_key: str, *, now: float | None,
        tolerance: float,
    ) -> Verification:  # fmt: skip
        values = header_values(headers, self.header)
        if not values:
            return Verification(False, f"missing {self.header} header")
        if len(values) > 1:
            return Verification(False, f"more than one {self.header} header")
        given = values[0].strip()
        digest = given[len(self.prefix) :].lower()
        if not given.startswith(self.prefix) or not re.fullmatch("[0-9a-f]{64}", digest):
            expected = f"{self.prefix}<hex>"
            return Verification(False, f"malformed {self.header} header (expected {expected})")
        if not hmac.compare_digest(self.sign(signing_key, raw_body), self.prefix + digest):
            return Verification(False, "the signature does not match the body")
        return Verification(True, "signature verified")


@dataclass(frozen=True)
class PasscodeInBody:
    """The shared secret travels in the body (Figma's ``passcode``): compared in constant
    time, and cut out of the body before it is stored (``secret_fields``)."""

    field: str = "passcode"

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return (self.field,)

    def sign(self, signing_key: str, raw_body: bytes) -> str:
        return ""

    def verify(
        self, headers: Headers, raw_body: bytes, signing_key: str, *, now: float | None,
        tolerance: float,
    ) -> Verification:  # fmt: skip
        data = load_json(raw_body)
        given = data.get(self.field) if isinstance(data, Mapping) else None
        if not isinstance(given, str) or not given:
            return Verification(False, f"the body has no {self.field}")
        if not hmac.compare_digest(given.encode(), signing_key.encode()):
            return Verification(False, f"the {self.field} does not match")
        return Verification(True, f"{self.field} verified")


@dataclass(frozen=True)
class EventName:
    """Where a delivery names its event: a ``header`` (GitHub's ``X-GitHub-Event``), a
    ``body`` path (Calendly's ``event``), or both joined (``issues`` + ``opened`` ->
    ``issues.opened``). With both, the header part is the topic an application subscribes
    to (GitHub hooks take ``issues``, which delivers every ``issues.*``)."""

    body: str | None = None
    header: str | None = None
    separator: str = "."

    def read(self, payload: Any, headers: Headers) -> str:
        parts = []
        if self.header:
            parts.append(_header(headers, self.header) or "")
        if self.body:
            data = load_json(payload)
            value = paths.get(data, self.body) if isinstance(data, Mapping) else None
            parts.append(value if isinstance(value, str) else "")
        if self.header and not parts[0]:
            return ""
        return self.separator.join(p for p in parts if p)

    def topic(self, event: str) -> str:
        return event.split(self.separator, 1)[0] if self.header and self.body else event


@dataclass(frozen=True)
class DedupeKey:
    """What makes every redelivery of one event the same: a delivery id the application
    sends in a ``header`` (GitHub's ``X-GitHub-Delivery``), else the values at ``body``
    paths (Calendly sends no id), else a digest of the body itself."""

    prefix: str
    header: str | None = None
    body: tuple[str, ...] = ()

    def key(self, delivery: Any, headers: Headers) -> str:
        if self.header:
            value = _header(headers, self.header)
            if value and len(value) <= 100:
                return f"{self.prefix}:{value}"
        data = load_json(delivery)
        if self.body and isinstance(data, Mapping):
            values = [paths.get(data, path) for path in self.body]
            if all(v is not None and not isinstance(v, Mapping | list) for v in values):
                identity = json.dumps([str(v) for v in values], separators=(",", ":"))
                return f"{self.prefix}:" + hashlib.sha256(identity.encode()).hexdigest()
        return f"{self.prefix}-body:" + body_digest(delivery)


class WebhookSupport:
    """Base class for a connector's webhooks; the defaults say "not supported".

    Declare ``events`` (the names users subscribe to), ``options`` (what a subscription
    takes besides URL and events), ``kept_headers`` (delivery headers worth storing with an
    event), ``signature_header``, ``signing_key_by`` ("portal": the portal makes the signing
    secret and gives it to the application; "application": the application makes it and
    answers it when the subscription is created), ``max_events`` (per subscription, if the
    application limits it) and, optionally, ``event_examples`` (a sample payload per event,
    for editors); implement the subscription methods and ``verify_delivery``, ``dedupe_key``
    and ``event_name``.
    """

    events: tuple[str, ...] = ()
    options: tuple[SubscriptionOption, ...] = ()
    kept_headers: tuple[str, ...] = ()
    signature_header: str | None = None
    signing_key_by: Literal["portal", "application"] = "portal"
    max_events: int | None = None
    #: Body fields that hold a secret (a passcode), cut out before a delivery is stored.
    secret_fields: tuple[str, ...] = ()
    #: A sample payload per event name, for editors (optional).
    event_examples: Mapping[str, Mapping[str, Any]] = {}
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

    # Declarations, checked ---------------------------------------------------------------------
    def subscription_options(self, given: Mapping[str, Any], display_name: str) -> dict[str, str]:
        """``given`` checked against the declared options, defaults filled in; a
        ``FilterError`` names what is unknown, missing or not one of the choices."""
        declared = {option.name: option for option in self.options}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            takes = ", ".join(declared) or "no options"
            raise FilterError(
                f"{display_name} subscriptions take no option {', '.join(map(repr, unknown))}; "
                f"they take: {takes}.",
                key=unknown[0],
                allowed=list(declared),
            )
        cleaned: dict[str, str] = {}
        for option in self.options:
            value = given.get(option.name)
            value = value.strip() if isinstance(value, str) else value
            if value in (None, ""):
                value = option.default
            if value in (None, ""):
                if option.required:
                    raise FilterError(
                        f"Give the {option.label} ({option.name}) to subscribe to.",
                        key=option.name,
                    )
                continue
            if option.choices and value not in option.choices:
                choices = " or ".join(repr(c) for c in option.choices)
                raise FilterError(
                    f"The {option.label} is {choices}.", key=option.name, allowed=option.choices
                )
            cleaned[option.name] = str(value)
        return cleaned

    def subscription_events(self, events: Sequence[str]) -> list[str]:
        """What the application is asked to send for the portal's ``events`` (the same,
        unless the application subscribes to coarser topics)."""
        return list(dict.fromkeys(events))

    def read_subscription(self, data: Any) -> Subscription | None:
        """The subscription in the answer of ``subscribe_action`` (run as a step), if any."""
        return None

    def stored_body(self, raw_body: bytes, payload: Mapping[str, Any]) -> bytes:
        """The body as it may be stored: without the ``secret_fields``."""
        if not any(name in payload for name in self.secret_fields):
            return raw_body
        kept = {k: v for k, v in payload.items() if k not in self.secret_fields}
        return json.dumps(kept, separators=(",", ":"), ensure_ascii=False).encode()

    # Subscriptions ----------------------------------------------------------------------------
    def create_subscription(
        self,
        connector: Connector,
        credentials: Credentials,
        *,
        url: str,
        events: Sequence[str],
        signing_key: str | Secret | None,
        runtime: Runtime,
        **options: Any,
    ) -> Subscription:
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

    def list_subscriptions(
        self, connector: Connector, credentials: Credentials, *, runtime: Runtime, **options: Any
    ) -> list[Subscription]:
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

    def get_subscription(
        self, connector: Connector, credentials: Credentials, subscription: str, *, runtime: Runtime
    ) -> Subscription:
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

    def delete_subscription(
        self, connector: Connector, credentials: Credentials, subscription: str, *, runtime: Runtime
    ) -> None:
        raise NotSupported(f"{connector.display_name} does not support webhook subscriptions.")

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
        return Verification(False, "this application's deliveries cannot be verified")

    def dedupe_key(self, delivery: bytes | str | Mapping[str, Any], headers: Headers = ()) -> str:
        return body_digest(delivery)

    def event_name(self, payload: bytes | str | Mapping[str, Any], headers: Headers = ()) -> str:
        return ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": list(self.events),
            "options": [option.as_dict() for option in self.options],
            "kept_headers": list(self.kept_headers),
            "signature_header": self.signature_header,
            "signing_key_by": self.signing_key_by,
            "max_events": self.max_events,
            "notes": dict(self.notes),
            "subscribe_action": self.subscribe_action,
        }


@dataclass(frozen=True)
class SubscriptionShape:
    """Where a subscription's parts are in the application's answer (paths), and which
    ``state`` values mean it delivers. ``active`` names a boolean field instead of a state."""

    id: str = "id"
    uri: str | None = None
    callback_url: str = "url"
    events: str = "events"
    state: str | None = None
    active: str | None = None
    active_states: tuple[str, ...] = ("active",)
    item: str | None = None  # where the resource is in a one-resource answer

    def read(self, data: Any, options: Mapping[str, str]) -> Subscription:
        resource = paths.get(data, self.item) if self.item else data
        ident = paths.get(resource, self.id) if isinstance(resource, Mapping) else None
        if ident is None:
            raise InvalidResponse("The answer has no webhook subscription in it.")
        uri = paths.get(resource, self.uri) if self.uri else None
        events = paths.get(resource, self.events)
        if self.active:
            state = "active" if paths.get(resource, self.active) else "disabled"
        else:
            raw = str(paths.get(resource, self.state or "state") or "")
            state = "active" if raw in self.active_states else (raw.lower() or None)
        return Subscription(
            uri=str(uri or ident),
            callback_url=str(paths.get(resource, self.callback_url) or ""),
            events=tuple(events) if isinstance(events, list) else (str(events),),
            state=state,
            created_at=resource.get("created_at"),
            options=dict(options),
        )


class ActionWebhooks(WebhookSupport):
    """Webhooks declared, not written: subscriptions are made with the connector's own
    actions, deliveries checked with small strategies.

    ``create``, ``list``, ``delete`` (and ``get``) name actions; each gets the subscription
    options that are its parameters as filter rows (GitHub: ``owner``, ``repo``). ``body``
    describes the create request's body rows, with ``{url}``, ``{secret}``, ``{events}``
    (the topics, one ``key[]`` row each), ``{event}`` (the one event, for applications whose
    subscriptions take one) and ``{<option>}`` filled in. ``shape`` reads a
    subscription from an answer. A subscription's URI is its resource URL where the
    application gives one, so deleting it later needs no options.
    """

    def __init__(
        self,
        *,
        events: Sequence[str],
        create: str,
        list: str,
        delete: str,
        body: Mapping[str, Any],
        signature: HmacSignature | PasscodeInBody,
        event_name: EventName,
        dedupe: DedupeKey,
        shape: SubscriptionShape,
        get: str | None = None,
        options: Sequence[SubscriptionOption] = (),
        kept_headers: Sequence[str] = (),
        signing_key_by: Literal["portal", "application"] = "portal",
        signing_key_path: str | None = None,
        max_events: int | None = None,
        event_examples: Mapping[str, Mapping[str, Any]] | None = None,
        notes: Mapping[str, str] | None = None,
    ) -> None:
        self.events = tuple(events)
        self.actions = {"create": create, "list": list, "delete": delete, "get": get}
        self.body = dict(body)
        self.signature = signature
        self.name = event_name
        self.dedupe = dedupe
        self.shape = shape
        self.options = tuple(options)
        header = getattr(signature, "header", None)
        self.signature_header = header
        self.kept_headers = tuple(
            h.lower() for h in (*kept_headers, header, event_name.header, dedupe.header) if h
        )
        self.secret_fields = tuple(getattr(signature, "secret_fields", ()))
        self.signing_key_by = signing_key_by
        self.signing_key_path = signing_key_path
        self.max_events = max_events
        self.event_examples = dict(event_examples or {})
        self.notes = dict(notes or {})
        self.subscribe_action = create
        self.callback_key, self.signing_key_key = _row_keys(self.body)

    # Subscriptions ----------------------------------------------------------------------------
    def subscription_events(self, events: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(self.name.topic(e) for e in events))

    def read_subscription(self, data: Any) -> Subscription | None:
        try:
            return self.shape.read(data, {})
        except InvalidResponse:
            return None

    def _rows(self, connector: Connector, action: str, options: Mapping[str, str]) -> list:
        """The options that are the action's path or query parameters, as filter rows (the
        create action's body comes from ``body``)."""
        params = connector.actions[action].params_by_name
        return [
            (name, value)
            for name, value in options.items()
            if name in params and params[name].location != "body"
        ]

    def create_subscription(
        self, connector, credentials, *, url, events, signing_key, runtime, **options
    ) -> Subscription:
        if isinstance(events, str):
            events = [events]
        key = key_text(signing_key) or ""
        values = {"url": url, "secret": key, **options}
        topics = self.subscription_events(events)
        rows = self._rows(connector, self.actions["create"], options)
        rows += _body_rows(self.body, values, topics)
        try:
            result = connector.run_action(
                self.actions["create"], credentials, filters=rows, runtime=runtime,
                secrets=[key] if key else [],
            )  # fmt: skip
        except ApiError as error:
            # Applications say "already exists" with other statuses than 409 (GitHub: 422).
            if isinstance(error, AlreadyExists) or "already exists" not in str(error).lower():
                raise
            raise AlreadyExists(
                str(error), status=error.status, title=error.title,
                api_message=error.api_message, details=error.details,
            ) from None  # fmt: skip
        created = self.shape.read(result.data, options)
        if self.signing_key_by == "application" and self.signing_key_path:
            secret = paths.get(result.data, self.signing_key_path)
            return _with_key(created, secret)
        return created

    def list_subscriptions(self, connector, credentials, *, runtime, **options):
        rows = self._rows(connector, self.actions["list"], options)
        result = connector.run_action(
            self.actions["list"], credentials, filters=rows, runtime=runtime
        )
        items = result.items if result.items is not None else result.data
        return [self.shape.read(item, options) for item in items or []]

    def _by_uri(self, connector, action: str, subscription: str) -> list:
        """Path rows of ``action`` for a subscription URI (its resource URL, or an id)."""
        template = connector.actions[action].path
        names = re.findall(r"\{(\w+)\}", template)
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        match = re.search(pattern + "$", subscription.split("?")[0])
        if match:
            return list(match.groupdict().items())
        return [(names[-1], subscription.rstrip("/").rsplit("/", 1)[-1])] if names else []

    def get_subscription(self, connector, credentials, subscription, *, runtime):
        action = self.actions["get"]
        if action is None:
            return super().get_subscription(connector, credentials, subscription, runtime=runtime)
        rows = self._by_uri(connector, action, subscription)
        result = connector.run_action(action, credentials, filters=rows, runtime=runtime)
        return self.shape.read(result.data, {})

    def delete_subscription(self, connector, credentials, subscription, *, runtime) -> None:
        action = self.actions["delete"]
        rows = self._by_uri(connector, action, subscription)
        connector.run_action(action, credentials, filters=rows, runtime=runtime)

    # Deliveries -------------------------------------------------------------------------------
    def verify_delivery(self, headers, raw_body, signing_key, *, now=None, tolerance=180):
        key = key_text(signing_key)
        if not key:
            return Verification(False, "no signing key is configured for this webhook")
        body = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body)
        return self.signature.verify(headers, body, key, now=now, tolerance=tolerance)

    def dedupe_key(self, delivery, headers=()) -> str:
        return self.dedupe.key(delivery, headers)

    def event_name(self, payload, headers=()) -> str:
        return self.name.read(payload, headers)


def _row_keys(body: Mapping[str, Any], prefix: str = "") -> tuple[str, str]:
    """The filter keys that carry ``{url}`` and ``{secret}`` in a body template."""
    found = {"{url}": "url", "{secret}": "signing_key"}
    for key, value in body.items():
        if isinstance(value, Mapping):
            inner = _row_keys(value, f"{prefix}{key}.")
            found.update({"{url}": inner[0], "{secret}": inner[1]})
        elif value in ("{url}", "{secret}"):
            found[value] = f"{prefix}{key}"
    return found["{url}"], found["{secret}"]


def _body_rows(
    template: Mapping[str, Any], values: Mapping[str, str], topics: Sequence[str], prefix: str = ""
) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in template.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _body_rows(value, values, topics, f"{name}.")
        elif value == "{events}":
            rows += [(f"{name}[]", topic) for topic in topics]
        elif value == "{event}":  # applications whose subscriptions take one event
            rows += [(name, topic) for topic in topics[:1]]
        elif isinstance(value, str):
            text = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), value)
            if text:
                rows.append((name, text))
        else:
            rows.append((name, json.dumps(value) if isinstance(value, bool) else value))
    return rows


def _with_key(subscription: Subscription, secret: Any) -> Subscription:
    if not isinstance(secret, str) or not secret:
        raise InvalidResponse("The application's answer has no signing secret in it.")
    return replace(subscription, signing_key=Secret(secret))
