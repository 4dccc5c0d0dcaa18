"""Calls made with a stored credential: actions and webhook subscription changes.

Each call opens the credential once through the audited opener (``portal.vault.opener``)
and asks the engine's call layer (``flows.calls``) to make it, so a page, a task and a run
step report a failure the same way. None of these raise for a connector failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import connectors
import flows
from flows import calls
from flows.calls import ActionOutcome, SubscriptionOutcome
from portal.applications.declarations import get_application
from portal.applications.runtime import runtime
from portal.vault.models import Credential
from portal.vault.opener import open_credential

__all__ = [
    "ActionOutcome",
    "SubscriptionOutcome",
    "list_subscriptions",
    "remove_subscriptions_to",
    "run_action",
    "subscribe",
    "unsubscribe",
]


def run_action(
    credential: Credential,
    action: str,
    *,
    filters: Sequence[Sequence[str]] = (),
    context: Mapping[str, Any] | None = None,
    document: Any = None,
    limit: int | None = None,
    idempotency_key: str | None = None,
    purpose: str = "",
    actor=None,
) -> ActionOutcome:
    """Run ``action`` of the credential's application; its use is audited with the outcome
    (as ``actor``'s, a member, or else the system's for ``purpose``)."""
    app = get_application(credential.application)
    try:
        with open_credential(credential, purpose=purpose or "action", actor=actor) as opened:
            outcome = calls.run_action(
                app, action, opened.credentials, runtime=runtime(app), filters=filters,
                context=context, document=document, limit=limit,
                idempotency_key=idempotency_key,
            )  # fmt: skip
            opened.report(
                action=action,
                ok=outcome.ok,
                status=outcome.status,
                **({"message": outcome.message} if not outcome.ok else {}),
            )
            return outcome
    except flows.CredentialUnavailable as error:
        return ActionOutcome(ok=False, message=str(error))


def _subscription_call(
    credential: Credential,
    purpose: str,
    call: Callable[[connectors.Connector, connectors.Credentials, connectors.Runtime], Any],
) -> SubscriptionOutcome:
    app = get_application(credential.application)
    try:
        with open_credential(credential, purpose=purpose) as opened:
            outcome = call(app, opened.credentials, runtime(app))
            opened.report(ok=outcome.ok, **({"message": outcome.message} if not outcome.ok else {}))
            return outcome
    except flows.CredentialUnavailable as error:
        return SubscriptionOutcome(ok=False, message=str(error))


def subscribe(
    credential: Credential,
    *,
    url: str,
    events: Sequence[str],
    signing_key: str | None,
    options: Mapping[str, str] | None = None,
) -> SubscriptionOutcome:
    """Subscribe ``url`` to ``events`` at the credential's application with the declared
    subscription ``options``, signed with our key (None: the application makes one)."""
    return _subscription_call(
        credential,
        "webhook subscription created",
        lambda app, creds, rt: calls.subscribe(
            app,
            creds,
            runtime=rt,
            url=url,
            events=events,
            options=options or {},
            signing_key=signing_key,
        ),
    )


def list_subscriptions(
    credential: Credential, *, options: Mapping[str, str] | None = None
) -> SubscriptionOutcome:
    """Every subscription the credential can see with these subscription ``options``."""
    return _subscription_call(
        credential,
        "webhook subscriptions listed",
        lambda app, creds, rt: calls.list_subscriptions(
            app, creds, runtime=rt, options=options or {}
        ),
    )


def unsubscribe(credential: Credential, subscription: str) -> SubscriptionOutcome:
    """Delete a subscription by URI; one that is gone already counts as deleted."""
    return _subscription_call(
        credential,
        "webhook subscription deleted",
        lambda app, creds, rt: calls.unsubscribe(app, creds, subscription, runtime=rt),
    )


def remove_subscriptions_to(
    credential: Credential, url: str, options: Mapping[str, str] | None = None
) -> SubscriptionOutcome:
    """Delete every subscription the credential sees with ``options`` that calls ``url``."""
    return _subscription_call(
        credential,
        "webhook subscriptions to a Processflow URL removed",
        lambda app, creds, rt: calls.remove_subscriptions_to(
            app, creds, runtime=rt, url=url, options=options or {}
        ),
    )
