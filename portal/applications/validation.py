"""Asking an application whom a credential reaches (its declared validation action, e.g.
``GET /user``), with messages a person can act on, and without mistaking an outage for a
bad credential."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import connectors
from connectors import errors as connector_errors
from portal.applications.declarations import get_application
from portal.applications.runtime import fingerprint_key, runtime


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
    """Ask the application whom these credentials reach.

    ``interactive`` (the default) gives up sooner, for a person waiting at the Validate
    button; the periodic re-validation passes False.

    ``key`` names a stored credential for rate budgets and caches; values being validated
    before they are saved are keyed by a keyed digest of themselves, so one tenant's trial
    tokens never share a budget with another's.
    """
    creds = connectors.Credentials(
        type=type, fields=dict(fields), secrets=dict(secrets), key="unsaved"
    )
    if key is None:
        key = f"unsaved:{creds.fingerprint(fingerprint_key())}"
    return validate_credentials(
        application,
        connectors.Credentials(type=type, fields=dict(fields), secrets=dict(secrets), key=key),
        interactive=interactive,
    )


def validate_credentials(
    application: str, credentials: connectors.Credentials, *, interactive: bool = True
) -> ValidationOutcome:
    """:func:`validate` for credentials already opened (a stored credential)."""
    app = get_application(application)
    try:
        account = app.validate(credentials, runtime=runtime(app, interactive=interactive))
    except connector_errors.ConnectorError as error:
        says_nothing = error.retryable or isinstance(error, connector_errors.TransportError)
        return ValidationOutcome(
            ok=False,
            message=_outage_message(app, error) if says_nothing else str(error),
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
    """ "Connected to GitHub as Ada Lovelace (ada@example.com), organization …"."""
    who = account.get("name") or account.get("email") or account.get("uri") or "an account"
    email = account.get("email")
    message = f"Connected to {app.display_name} as {who}"
    if email and email != who:
        message += f" ({email})"
    if account.get("organization"):
        message += f", organization {account['organization']}"
    return message + "."
