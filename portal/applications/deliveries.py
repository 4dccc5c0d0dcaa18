"""Webhook deliveries as each application sends them: authentic or not, under which name,
and which key makes every redelivery of one event the same."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import connectors
from portal.applications.declarations import get_application


def verify_delivery(
    application: str, *, headers, raw_body: bytes, signing_key: str, tolerance: float
) -> connectors.Verification:
    """Whether a webhook delivery is authentic and fresh (never raises)."""
    return get_application(application).verify_delivery(
        headers, raw_body, connectors.Secret(signing_key), tolerance=tolerance
    )


def dedupe_key(application: str, delivery: bytes | Mapping[str, Any], headers=()) -> str:
    """A key that is the same for every redelivery of one event (a delivery id from the
    headers where the application sends one, else derived from the body)."""
    return get_application(application).dedupe_key(delivery, headers)[:128]


def event_name(application: str, payload: Mapping[str, Any], headers=()) -> str:
    """The delivered event's name, from the body and the headers as the application
    declares (``invitee.created``, ``issues.opened``), or ""."""
    return get_application(application).event_name(payload, headers)[:100]


#: Delivery headers worth keeping with any application's event (never Authorization/Cookie).
COMMON_HEADERS = ("content-type", "user-agent", "x-request-id")


def kept_headers(application: str) -> tuple[str, ...]:
    """The delivery headers stored with an event: the common ones and those the
    application declares (its signature, event name and delivery id headers)."""
    app = get_application(application)
    declared = app.webhooks.kept_headers if app.webhooks is not None else ()
    return tuple(dict.fromkeys((*COMMON_HEADERS, *(h.lower() for h in declared))))


def stored_body(application: str, raw_body: bytes, payload: Mapping[str, Any]) -> bytes:
    """The delivery body as it may be stored: without the fields that carry a secret (an
    application that sends its passcode in the body)."""
    app = get_application(application)
    return app.webhooks.stored_body(raw_body, payload) if app.webhooks is not None else raw_body
