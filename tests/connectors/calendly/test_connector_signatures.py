"""Calendly webhook signatures: known answers, and a clear verdict (never an exception)."""

from __future__ import annotations

import pytest

from connectors import Secret, get_connector

KEY = "sandbox-signing-key-0001"
T = 1_700_000_000
BODY = (
    b'{"event":"invitee.created","created_at":"2025-03-03T09:00:00.000000Z",'
    b'"payload":{"uri":"https://api.calendly.com/scheduled_events/EV1/invitees/IV1"}}'
)
# Computed independently with: printf '%s' "<t>.<body>" | openssl dgst -sha256 -hmac "<key>"
BODY_V1 = "2b6b2e371eb73ddd006ed165d58993ef56c0f79aa534417b1d5305b5d167a105"
EMPTY_OBJECT_V1 = "9708c684eaab75b02e6a94c88a266db4f9821e77d0247f43a14a20b3e56462f3"
OTHER_KEY_V1 = "ae82598416261c419bf0f6a56bcbfd4c6fa1fc343f0dc76048d9231d25598b58"


@pytest.fixture
def calendly():
    return get_connector("calendly")


def signed(v1: str = BODY_V1, t: int | str = T) -> dict[str, str]:
    return {"Calendly-Webhook-Signature": f"t={t},v1={v1}"}


@pytest.mark.parametrize(
    ("key", "t", "body", "v1"),
    [
        (KEY, T, BODY, BODY_V1),
        (KEY, T, b"{}", EMPTY_OBJECT_V1),
        ("another key", 1_712_345_678, b'{"event":"invitee.canceled"}', OTHER_KEY_V1),
    ],
)
def test_known_signatures_verify(calendly, key, t, body, v1):
    verdict = calendly.verify_delivery(signed(v1, t), body, key, now=t + 1)

    assert verdict.ok, verdict.reason
    assert verdict.timestamp == t


def test_a_tampered_body_is_rejected(calendly):
    verdict = calendly.verify_delivery(signed(), BODY.replace(b"IV1", b"IV2"), KEY, now=T)

    assert not verdict.ok
    assert verdict.reason == "the signature does not match the body"


def test_the_wrong_key_is_rejected(calendly):
    verdict = calendly.verify_delivery(signed(), BODY, "not-the-key", now=T)

    assert not verdict.ok
    assert "does not match" in verdict.reason


def test_a_text_body_and_a_secret_key_verify_like_bytes_and_text(calendly):
    verdict = calendly.verify_delivery(signed(), BODY.decode(), Secret(KEY), now=T)

    assert verdict.ok


def test_the_header_name_is_case_insensitive(calendly):
    headers = {"calendly-webhook-signature": f"t={T},v1={BODY_V1}"}

    assert calendly.verify_delivery(headers, BODY, KEY, now=T).ok


def test_a_timestamp_at_the_tolerance_still_verifies(calendly):
    assert calendly.verify_delivery(signed(), BODY, KEY, now=T + 180).ok
    assert calendly.verify_delivery(signed(), BODY, KEY, now=T - 180).ok


def test_a_stale_timestamp_is_rejected(calendly):
    verdict = calendly.verify_delivery(signed(), BODY, KEY, now=T + 181)

    assert not verdict.ok
    assert verdict.reason == "the timestamp is 181 s old (tolerance 180 s)"


def test_a_timestamp_in_the_future_is_rejected(calendly):
    verdict = calendly.verify_delivery(signed(), BODY, KEY, now=T - 600)

    assert not verdict.ok
    assert verdict.reason == "the timestamp is 600 s in the future (tolerance 180 s)"


def test_the_tolerance_is_configurable(calendly):
    assert not calendly.verify_delivery(signed(), BODY, KEY, now=T + 31, tolerance=30).ok
    assert calendly.verify_delivery(signed(), BODY, KEY, now=T + 600, tolerance=900).ok


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing Calendly-Webhook-Signature header"),
        ({"Calendly-Webhook-Signature": ""}, "malformed Calendly-Webhook-Signature header"),
        ({"Calendly-Webhook-Signature": f"{T},{BODY_V1}"}, "malformed"),
        ({"Calendly-Webhook-Signature": f"t={T}"}, "has no 'v1' part"),
        ({"Calendly-Webhook-Signature": f"v1={BODY_V1}"}, "has no 't' part"),
        ({"Calendly-Webhook-Signature": f"t={T},t={T},v1={BODY_V1}"}, "repeats its 't' part"),
        (
            {"Calendly-Webhook-Signature": f"t={T},v1={BODY_V1},v1={BODY_V1}"},
            "repeats its 'v1' part",
        ),
        ({"Calendly-Webhook-Signature": f"t=17e8,v1={BODY_V1}"}, "is not an integer"),
        ({"Calendly-Webhook-Signature": f"t=-5,v1={BODY_V1}"}, "is not an integer"),
        ({"Calendly-Webhook-Signature": f"t={T}.5,v1={BODY_V1}"}, "is not an integer"),
        ({"Calendly-Webhook-Signature": f"t={T},v1=nothex"}, "does not match"),
        ({"Calendly-Webhook-Signature": f"t={T},v1={'é' * 64}"}, "does not match"),
    ],
)
def test_malformed_signature_headers_are_rejected_with_a_reason(calendly, headers, reason):
    verdict = calendly.verify_delivery(headers, BODY, KEY, now=T)

    assert not verdict.ok
    assert reason in verdict.reason


def test_two_signature_headers_are_rejected(calendly):
    headers = [
        ("Calendly-Webhook-Signature", f"t={T},v1={BODY_V1}"),
        ("Calendly-Webhook-Signature", f"t={T},v1={OTHER_KEY_V1}"),
    ]

    verdict = calendly.verify_delivery(headers, BODY, KEY, now=T)

    assert not verdict.ok
    assert verdict.reason == "more than one Calendly-Webhook-Signature header"


def test_no_signing_key_means_no_verification(calendly):
    verdict = calendly.verify_delivery(signed(), BODY, "", now=T)

    assert not verdict.ok
    assert "no signing key" in verdict.reason


@pytest.mark.parametrize(
    ("headers", "body", "key"),
    [
        (None, BODY, KEY),
        (42, BODY, KEY),
        (signed(), None, KEY),
        (signed(), 12345, KEY),
        (signed(), BODY, 12345),
        ({"Calendly-Webhook-Signature": None}, BODY, KEY),
    ],
)
def test_verification_never_raises_whatever_it_is_fed(calendly, headers, body, key):
    verdict = calendly.verify_delivery(headers, body, key, now=T)

    assert verdict.ok is False
    assert verdict.reason


def test_the_dedupe_key_is_event_payload_uri_and_created_at(calendly):
    same_event_reserialised = (
        b'{"created_at": "2025-03-03T09:00:00.000000Z", "event": "invitee.created", '
        b'"payload": {"uri": "https://api.calendly.com/scheduled_events/EV1/invitees/IV1", '
        b'"rescheduled": false}}'
    )
    canceled = BODY.replace(b"invitee.created", b"invitee.canceled")

    key = calendly.dedupe_key(BODY)

    assert key == calendly.dedupe_key(same_event_reserialised)
    assert key == calendly.dedupe_key(__import__("json").loads(BODY))
    assert key != calendly.dedupe_key(canceled)
    assert key.startswith("calendly:")
    assert len(key) <= 128


def test_a_body_that_is_not_an_event_still_gets_a_stable_dedupe_key(calendly):
    assert calendly.dedupe_key(b"not json") == calendly.dedupe_key(b"not json")
    assert calendly.dedupe_key(b"not json") != calendly.dedupe_key(b"not json either")


def test_event_name_reads_the_event_field_and_never_raises(calendly):
    assert calendly.event_name(BODY) == "invitee.created"
    assert calendly.event_name({"event": "invitee.canceled"}) == "invitee.canceled"
    assert calendly.event_name(b"\xff not json") == ""
    assert calendly.event_name({"event": 42}) == ""
