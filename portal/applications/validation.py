"""Validating credentials from the portal: the engine's check (``flows.validation``) with
the portal's runtime, for typed values and for stored credentials alike."""

from __future__ import annotations

from collections.abc import Mapping

import connectors
from flows import validation as flows_validation
from flows.validation import ValidationOutcome
from portal.applications.declarations import get_application
from portal.applications.runtime import fingerprint_key, runtime


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
    return flows_validation.validate(
        app, credentials, runtime=runtime(app, interactive=interactive)
    )
