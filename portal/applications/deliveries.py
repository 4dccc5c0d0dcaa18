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


def dedupe_key(application: str, delivery: bytes | Mapping[str, Any]) -> str:
    """A key that is the same for every redelivery of one event."""
    return get_application(application).dedupe_key(delivery)[:128]


def event_name(application: str, payload: Mapping[str, Any]) -> str:
    """The delivered event's name (``invitee.created``), or ""."""
    return get_application(application).event_name(payload)[:100]
