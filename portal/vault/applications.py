"""The portal's one gateway to the ``connectors`` library.

Everything the portal asks of an application (what it declares, validating a credential,
running an action, webhook subscriptions, checking deliveries) goes through here, so the
portal's configuration (base URLs, timeouts, the shared rate budget and cache, the
private-network policy) is applied in one place, and connector errors become outcomes with
messages a person can act on. Credentials are opened (decrypted) here, only for the call that
needs them, and every use of a stored credential is written to its audit history.

Nothing in this module names a particular application: a connector's base-URL variable
(``CALENDLY_API_BASE_URL``) is read from the settings by the name the connector declares.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.exceptions import ValidationError
from django.utils.crypto import salted_hmac

import connectors
from connectors import errors as connector_errors
from portal.vault import audit, crypto
from portal.vault.keys import open_secrets
from portal.vault.models import Credential, CredentialEvent
from portal.vault.ratebudget import SharedRateBudget

CANNOT_DECRYPT = (
    "The stored secret cannot be decrypted. Replace the secret to use this credential again."
)


# --- What applications declare ----------------------------------------------------------------


def all_applications() -> list[connectors.Connector]:
    """Installed connectors, by display name."""
    return sorted(connectors.all_connectors(), key=lambda c: c.display_name.lower())


def get_application(name: str) -> connectors.Connector:
    """The connector called ``name``; ValidationError (a 400) listing the installed ones."""
    try:
        return connectors.get_connector(name or "")
    except connector_errors.UnknownConnector:
        installed = ", ".join(c.name for c in all_applications())
        raise ValidationError(
            {"application": [f"Unknown application {name!r}; installed: {installed}."]}
        ) from None


def display_name(name: str) -> str:
    return get_application(name).display_name


def credential_type(application: str, type: str) -> connectors.CredentialType:
    """The application's credential type ``type``; ValidationError naming the ones there are."""
    app = get_application(application)
    for candidate in app.credential_types:
        if candidate.name == type:
            return candidate
    names = ", ".join(t.name for t in app.credential_types)
    raise ValidationError(
        {"type": [f"{app.display_name} has no credential type {type!r}; it has: {names}."]}
    )


def describe(name: str) -> dict:
    """A JSON description for the API: fields, actions and schemas, webhook events."""
    return get_application(name).describe()


def webhook_events(application: str) -> list[str]:
    """The events the application can deliver to a webhook (empty: it cannot)."""
    app = get_application(application)
    return list(app.webhooks.events) if app.webhooks is not None else []


def resource_functions(application: str) -> list[str]:
    """Names usable as ``~{Name}~`` in the application's action filters."""
    return list(get_application(application).resource_functions)


def portal_filled_keys(application: str, action: str) -> frozenset[str]:
    """Filter keys of ``action`` that the portal fills in itself and users must not type:
    the signing key of the action that subscribes a webhook (the portal hands over the
    subscribed processflow's own key, which it keeps encrypted)."""
    webhooks = get_application(application).webhooks
    if webhooks is not None and webhooks.subscribe_action == action:
        return frozenset({webhooks.signing_key_key})
    return frozenset()


def action_keys() -> list[tuple[str, list[tuple[str, bool]]]]:
    """For the editor's help panel: ``("Calendly › List Scheduled Events", [(key,
    required), ...])`` for every action of every application, without the keys the portal
    fills in itself."""
    return [
        (
            f"{app.display_name} › {action.label}",
            [
                (param.key, param.required and param.default is None)
                for param in action.params
                if param.key not in portal_filled_keys(app.name, name)
            ],
        )
        for app in all_applications()
        for name, action in app.actions.items()
    ]


def check_filters(application: str, action: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """Problems with action-filter rows that are certain before running (for editors)."""
    app = get_application(application)
    try:
        return app.check_filters(action, [tuple(row) for row in rows])
    except connector_errors.ConnectorError as error:
        return [str(error)]


# --- How the portal runs connectors -----------------------------------------------------------


class _SharedCache:
    """Resource-function results (organization URIs and the like, never secrets) in the
    Django cache, so every web process and worker shares one lookup per credential."""

    def get(self, key: str) -> Any | None:
        return django_cache.get(key)

    def set(self, key: str, value: Any, ttl: float) -> None:
        django_cache.set(key, value, timeout=max(1, int(ttl)))


@functools.cache
def _budget(name: str, per_minute: int) -> SharedRateBudget:
    return SharedRateBudget(per_minute)


def fingerprint_key() -> bytes:
    """The key of credential fingerprints in cache keys, the same in every web process and
    worker (they share the cache), derived from SECRET_KEY: someone who can list Redis's keys
    cannot confirm a guessed token by hashing it."""
    return salted_hmac("portal.vault.applications.fingerprint_key", "v1").digest()


def runtime(app: connectors.Connector, *, interactive: bool = False) -> connectors.Runtime:
    """The connectors Runtime for ``app``, configured from the settings.

    ``interactive``: someone is waiting for the answer (the Validate button), so the call
    gives up sooner (one retry, a shorter read timeout) rather than outlast the web server's
    request timeout; workers keep the full patience.
    """
    read_timeout = settings.PORTAL_CONNECTOR_READ_TIMEOUT
    if interactive:
        read_timeout = min(read_timeout, settings.PORTAL_INTERACTIVE_READ_TIMEOUT)
    base_urls = {}
    override = getattr(settings, app.base_url_env, None) if app.base_url_env else None
    if override:
        base_urls[app.name] = override
    per_minute = app.rate_limit_per_minute
    return connectors.Runtime(
        base_urls=base_urls,
        rate_limiter=_budget(app.name, per_minute) if per_minute else connectors.Unlimited(),
        cache=_SharedCache(),
        allowed_private_hosts=frozenset(settings.PORTAL_ALLOWED_PRIVATE_HOSTS),
        connect_timeout=settings.PORTAL_CONNECTOR_CONNECT_TIMEOUT,
        read_timeout=read_timeout,
        max_retries=1 if interactive else connectors.Runtime.max_retries,
        fingerprint_key=fingerprint_key(),
    )


def credentials(
    *, type: str, fields: Mapping[str, str], secrets: Mapping[str, str], key: str
) -> connectors.Credentials:
    """The immutable credentials object a connector receives (secrets wrapped)."""
    return connectors.Credentials(type=type, fields=dict(fields), secrets=dict(secrets), key=key)


def _stored_credentials(credential: Credential) -> connectors.Credentials:
    """Open a stored credential for one call; raises VaultError when it cannot be decrypted."""
    return credentials(
        type=credential.type,
        fields=credential.fields,
        secrets=open_secrets(credential),
        key=f"credential:{credential.pk}",
    )


def _message(error: connector_errors.ConnectorError) -> str:
    return str(error)


# --- Validation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationOutcome:
    """The result of checking a credential against its application."""

    ok: bool
    message: str
    account: dict
    status: str | None
    """The credential's new status, or None when the check says nothing about the credential
    (the application was unreachable): an outage must not mark a good token invalid."""


def validate(
    application: str,
    *,
    type: str,
    fields: Mapping[str, str],
    secrets: Mapping[str, str],
    key: str | None = None,
    interactive: bool = True,
) -> ValidationOutcome:
    """Ask the application whom these credentials reach (Calendly: GET /users/me).

    ``interactive`` (the default) gives up sooner, for a person waiting at the Validate
    button; the periodic re-validation passes False.

    ``key`` names a stored credential for rate budgets and caches; values being validated
    before they are saved are keyed by a keyed digest of themselves, so one tenant's trial
    tokens never share a budget with another's.
    """
    app = get_application(application)
    creds = credentials(type=type, fields=fields, secrets=secrets, key="unsaved")
    if key is None:
        key = f"unsaved:{creds.fingerprint(fingerprint_key())}"
    creds = credentials(type=type, fields=fields, secrets=secrets, key=key)
    try:
        account = app.validate(creds, runtime=runtime(app, interactive=interactive))
    except connector_errors.ConnectorError as error:
        says_nothing = error.retryable or isinstance(error, connector_errors.TransportError)
        return ValidationOutcome(
            ok=False,
            message=_outage_message(app, error) if says_nothing else _message(error),
            account={},
            status=None if says_nothing else "invalid",
        )
    summary = account.as_dict()
    return ValidationOutcome(
        ok=True, message=account_message(app, summary), account=summary, status="valid"
    )


def _outage_message(app: connectors.Connector, error: connector_errors.ConnectorError) -> str:
    """What a user reads when the check said nothing about the credential itself."""
    unchanged = "The credential was not marked invalid; try again later."
    if isinstance(error, connector_errors.Timeout):
        return f"{app.display_name} did not answer in time ({error}). {unchanged}"
    if isinstance(error, connector_errors.TransportError):
        return f"{app.display_name} could not be reached ({error}). {unchanged}"
    if isinstance(error, connector_errors.RateLimited):
        return f"{app.display_name} is rate limiting requests ({error}). {unchanged}"
    if error.status is not None and error.status >= 500:
        return f"{app.display_name} could not be reached: {error} {unchanged}"
    return f"{error} {unchanged}"


def account_message(app: connectors.Connector, account: dict) -> str:
    """ "Connected to Calendly as Ada Lovelace (ada@example.com), organization …"."""
    who = account.get("name") or account.get("email") or account.get("uri") or "an account"
    email = account.get("email")
    message = f"Connected to {app.display_name} as {who}"
    if email and email != who:
        message += f" ({email})"
    if account.get("organization"):
        message += f", organization {account['organization']}"
    return message + "."


# --- Actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionOutcome:
    """The result of running a connector action with a stored credential.

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
    credential: Credential,
    action: str,
    *,
    filters: Sequence[Sequence[str]] = (),
    context: Mapping[str, Any] | None = None,
    document: Any = None,
    limit: int | None = None,
    idempotency_key: str | None = None,
    purpose: str = "",
) -> ActionOutcome:
    """Run ``action`` of the credential's application; never raises for a connector failure.

    The use is recorded in the credential's audit history with its outcome (not its data).
    """
    app = get_application(credential.application)
    try:
        creds = _stored_credentials(credential)
    except crypto.VaultError:
        audit.record_decrypt_failure(credential)
        return ActionOutcome(ok=False, message=CANNOT_DECRYPT)
    try:
        result = app.run_action(
            action,
            creds,
            filters=[tuple(row) for row in filters],
            context=context,
            document=document,
            limit=limit,
            idempotency_key=idempotency_key,
            runtime=runtime(app),
        )
    except connector_errors.ConnectorError as error:
        outcome = ActionOutcome(
            ok=False,
            message=_message(error),
            status=error.status,
            retryable=error.retryable,
            retry_after=getattr(error, "retry_after", None),
            request=error.requests[-1].as_dict() if error.requests else {},
            requests=[r.as_dict() for r in error.requests],
        )
    else:
        outcome = ActionOutcome(
            ok=True,
            status=result.status,
            data=result.data,
            items=result.items,
            request=result.request,
            requests=[r.as_dict() for r in result.requests],
        )
    audit.record(
        credential,
        CredentialEvent.Action.USED,
        actor=audit.Actor.system(purpose or "action"),
        step_action=action,
        ok=outcome.ok,
        status=outcome.status,
        **({"message": outcome.message} if not outcome.ok else {}),
    )
    return outcome


# --- Webhook subscriptions ----------------------------------------------------------------------


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

    @property
    def subscription(self) -> dict:
        return self.subscriptions[0] if self.subscriptions else {}


def _subscription_call(credential: Credential, purpose: str, call) -> SubscriptionOutcome:
    app = get_application(credential.application)
    try:
        creds = _stored_credentials(credential)
    except crypto.VaultError:
        audit.record_decrypt_failure(credential)
        return SubscriptionOutcome(ok=False, message=CANNOT_DECRYPT)
    try:
        outcome = call(app, creds, runtime(app))
    except connector_errors.ConnectorError as error:
        outcome = SubscriptionOutcome(
            ok=False,
            message=_message(error),
            already_exists=isinstance(error, connector_errors.AlreadyExists),
            gone=isinstance(error, connector_errors.NotFound),
            retryable=error.retryable,
        )
    audit.record(
        credential,
        CredentialEvent.Action.USED,
        actor=audit.Actor.system(purpose),
        ok=outcome.ok,
        **({"message": outcome.message} if not outcome.ok else {}),
    )
    return outcome


def subscribe(
    credential: Credential, *, url: str, events: Sequence[str], scope: str, signing_key: str
) -> SubscriptionOutcome:
    """Subscribe ``url`` to ``events`` at the credential's application, signed with our key."""

    def call(app, creds, rt):
        created = app.create_subscription(
            creds, url=url, events=list(events), scope=scope,
            signing_key=connectors.Secret(signing_key), runtime=rt,
        )  # fmt: skip
        return SubscriptionOutcome(
            ok=True,
            message=f"Subscribed at {app.display_name} to {', '.join(created.events)}.",
            subscriptions=[created.as_dict()],
        )

    return _subscription_call(credential, "webhook subscription created", call)


def list_subscriptions(credential: Credential, *, scope: str) -> SubscriptionOutcome:
    """Every subscription the credential can see in ``scope``."""

    def call(app, creds, rt):
        found = app.list_subscriptions(creds, scope=scope, runtime=rt)
        return SubscriptionOutcome(ok=True, subscriptions=[s.as_dict() for s in found])

    return _subscription_call(credential, "webhook subscriptions listed", call)


def unsubscribe(credential: Credential, subscription: str) -> SubscriptionOutcome:
    """Delete a subscription by URI; one that is gone already counts as deleted."""

    def call(app, creds, rt):
        app.delete_subscription(creds, subscription, runtime=rt)
        return SubscriptionOutcome(ok=True, message=f"Subscription deleted at {app.display_name}.")

    outcome = _subscription_call(credential, "webhook subscription deleted", call)
    if outcome.gone:
        return SubscriptionOutcome(ok=True, message="The subscription was gone already.")
    return outcome


# --- Deliveries -------------------------------------------------------------------------------


def verify_delivery(
    application: str, *, headers, raw_body: bytes, signing_key: str, tolerance: float
) -> connectors.Verification:
    """Whether a webhook delivery is authentic and fresh (never raises)."""
    return get_application(application).verify_delivery(
        headers, raw_body, connectors.Secret(signing_key), tolerance=tolerance
    )


def dedupe_key(application: str, delivery: bytes | Mapping[str, Any]) -> str:
    """A key that is the same for every redelivery of one event."""
    return get_application(application).dedupe_key(delivery)[:128]


def event_name(application: str, payload: Mapping[str, Any]) -> str:
    """The delivered event's name (``invitee.created``), or ""."""
    return get_application(application).event_name(payload)[:100]
