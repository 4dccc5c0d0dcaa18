"""Asking an application whom a credential reaches (Calendly: ``GET /users/me``), with
messages a person can act on, and without mistaking an outage for a bad credential.

Every host validates through here, so a bad token reads the same in the portal's Manage >
App and in an on-premise agent's App Configurations panel.
"""

from __future__ import annotations

from dataclasses import dataclass

import connectors
from connectors import errors as connector_errors

VALID = "valid"
INVALID = "invalid"


@dataclass(frozen=True)
class ValidationOutcome:
    """The result of checking a credential against its application."""

    ok: bool
    message: str
    account: dict
    status: str | None
    """The credential's new status (``valid`` / ``invalid``), or None when the check says
    nothing about the credential (the application was unreachable): an outage must not mark
    a good token invalid."""
    warnings: tuple[str, ...] = ()
    """What the account cannot do although the credential works (e.g. Calendly's free plan
    cannot use webhooks), as the connector declares it."""


def validate(
    app: connectors.Connector, credentials: connectors.Credentials, *, runtime: connectors.Runtime
) -> ValidationOutcome:
    """Ask ``app`` whom ``credentials`` reach; never raises for a connector failure."""
    try:
        account = app.validate(credentials, runtime=runtime)
    except connector_errors.ConnectorError as error:
        says_nothing = error.retryable or isinstance(error, connector_errors.TransportError)
        return ValidationOutcome(
            ok=False,
            message=outage_message(app, error) if says_nothing else str(error),
            account={},
            status=None if says_nothing else INVALID,
        )
    summary = account.as_dict()
    return ValidationOutcome(
        ok=True,
        message=account_message(app, summary),
        account=summary,
        status=VALID,
        warnings=tuple(account.warnings),
    )


def outage_message(app: connectors.Connector, error: connector_errors.ConnectorError) -> str:
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
