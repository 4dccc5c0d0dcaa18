"""Calls to an application through its connector, as outcomes instead of exceptions.

A host (the portal's workers and pages, an on-premise agent) opens a credential, then asks
for an action or a subscription change here. Connector errors become outcomes that carry
what a person can act on (the message), what a retry needs (``retryable``,
``retry_after``) and what a step record shows (the request summaries), so every host tells
the same story about the same failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import connectors
from connectors import errors as connector_errors


@dataclass(frozen=True)
class ActionOutcome:
    """The result of running a connector action.

    ``request`` summarises the action's own request (method, URL without secrets, status,
    timing); ``requests`` every request made, resource-function lookups included.
    """

    ok: bool
    message: str = ""
    status: int | None = None
    data: Any = None
    items: list | None = None
    retryable: bool = False
    retry_after: float | None = None
    request: dict = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)


def run_action(
    app: connectors.Connector,
    action: str,
    credentials: connectors.Credentials,
    *,
    runtime: connectors.Runtime,
    filters: Sequence[Sequence[str]] = (),
    context: Mapping[str, Any] | None = None,
    document: Any = None,
    limit: int | None = None,
    idempotency_key: str | None = None,
) -> ActionOutcome:
    """Run ``action`` of ``app``; never raises for a connector failure."""
    try:
        result = app.run_action(
            action,
            credentials,
            filters=[tuple(row) for row in filters],
            context=context,
            document=document,
            limit=limit,
            idempotency_key=idempotency_key,
            runtime=runtime,
        )
    except connector_errors.ConnectorError as error:
        return ActionOutcome(
            ok=False,
            message=str(error),
            status=error.status,
            retryable=error.retryable,
            retry_after=getattr(error, "retry_after", None),
            request=error.requests[-1].as_dict() if error.requests else {},
            requests=[r.as_dict() for r in error.requests],
        )
    return ActionOutcome(
        ok=True,
        status=result.status,
        data=result.data,
        items=result.items,
        request=result.request,
        requests=[r.as_dict() for r in result.requests],
    )


@dataclass(frozen=True)
class SubscriptionOutcome:
    """The result of a subscription call: ``subscriptions`` holds what the application
    answered (one for create, all for list, none for delete) as plain dicts."""

    ok: bool
    message: str = ""
    subscriptions: list[dict] = field(default_factory=list)
    already_exists: bool = False
    gone: bool = False
    retryable: bool = False
    #: The signing key the application made, for applications that make their own.
    signing_key: str | None = field(default=None, repr=False)

    @property
    def subscription(self) -> dict:
        return self.subscriptions[0] if self.subscriptions else {}


def _subscription_call(call: Callable[[], SubscriptionOutcome]) -> SubscriptionOutcome:
    try:
        return call()
    except connector_errors.ConnectorError as error:
        return SubscriptionOutcome(
            ok=False,
            message=str(error),
            already_exists=isinstance(error, connector_errors.AlreadyExists),
            gone=isinstance(error, connector_errors.NotFound),
            retryable=error.retryable,
        )


def subscribe(
    app: connectors.Connector,
    credentials: connectors.Credentials,
    *,
    runtime: connectors.Runtime,
    url: str,
    events: Sequence[str],
    options: Mapping[str, str],
    signing_key: str | None,
) -> SubscriptionOutcome:
    """Subscribe ``url`` to ``events`` at the application with the subscription
    ``options``, signed with ``signing_key`` (None where the application makes the key: it
    is then in the outcome)."""

    def call():
        created = app.create_subscription(
            credentials, url=url, events=list(events),
            signing_key=connectors.Secret(signing_key) if signing_key else None,
            runtime=runtime, **options,
        )  # fmt: skip
        made = created.signing_key
        return SubscriptionOutcome(
            ok=True,
            message=f"Subscribed at {app.display_name} to {', '.join(created.events)}.",
            subscriptions=[created.as_dict()],
            signing_key=made.reveal() if isinstance(made, connectors.Secret) else None,
        )

    return _subscription_call(call)


def list_subscriptions(
    app: connectors.Connector,
    credentials: connectors.Credentials,
    *,
    runtime: connectors.Runtime,
    options: Mapping[str, str],
) -> SubscriptionOutcome:
    """Every subscription the credential can see with these subscription ``options``."""

    def call():
        found = app.list_subscriptions(credentials, runtime=runtime, **options)
        return SubscriptionOutcome(ok=True, subscriptions=[s.as_dict() for s in found])

    return _subscription_call(call)


def unsubscribe(
    app: connectors.Connector,
    credentials: connectors.Credentials,
    subscription: str,
    *,
    runtime: connectors.Runtime,
) -> SubscriptionOutcome:
    """Delete a subscription by URI; one that is gone already counts as deleted."""

    def call():
        app.delete_subscription(credentials, subscription, runtime=runtime)
        return SubscriptionOutcome(ok=True, message=f"Subscription deleted at {app.display_name}.")

    outcome = _subscription_call(call)
    if outcome.gone:
        return SubscriptionOutcome(ok=True, message="The subscription was gone already.")
    return outcome


def remove_subscriptions_to(
    app: connectors.Connector,
    credentials: connectors.Credentials,
    *,
    runtime: connectors.Runtime,
    url: str,
    options: Mapping[str, str],
) -> SubscriptionOutcome:
    """Delete every subscription the credential sees with ``options`` that calls ``url``."""
    listing = list_subscriptions(app, credentials, runtime=runtime, options=options)
    if not listing.ok:
        return listing
    for subscription in listing.subscriptions:
        if subscription.get("callback_url") == url:
            removed = unsubscribe(app, credentials, subscription["uri"], runtime=runtime)
            if not removed.ok:
                return removed
    return listing
