"""Webhook deliveries: signed like Calendly's, retried, and disabling a failing subscription."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest
import requests

from connectors.calendly.sandbox import CalendlySandbox, seed

from ..conftest import TEST_RETRY_DELAYS

pytestmark = pytest.mark.usefixtures("no_internet")


def subscribe(sb, client, url, *, events=("invitee.created",), signing_key="s3cret", **extra):
    body = {
        "url": url,
        "events": list(events),
        "organization": f"{sb.url}/organizations/{seed.ORGANIZATION_UUID}",
        "scope": "organization",
        **extra,
    }
    if signing_key is not None:
        body["signing_key"] = signing_key
    response = client.post("/webhook_subscriptions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["resource"]


def subscribe_on(sb, url):
    """Subscribe the owner's organization on a sandbox started by the test itself."""
    response = requests.post(
        f"{sb.url}/webhook_subscriptions",
        headers={"Authorization": f"Bearer {seed.OWNER_TOKEN}"},
        json={
            "url": url,
            "events": ["invitee.created"],
            "organization": f"{sb.url}/organizations/{seed.ORGANIZATION_UUID}",
            "scope": "organization",
        },
        timeout=5,
    )
    assert response.status_code == 201, response.text


def verify(signature_header: str, body: bytes, key: str) -> bool:
    """What a receiver does: recompute v1 over "<t>.<body>" and compare in constant time."""
    parts = dict(item.split("=", 1) for item in signature_header.split(","))
    expected = hmac.new(key.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


def test_fire_delivers_a_signed_body_that_verifies_with_the_subscription_key(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(200)
    subscription = subscribe(calendly_sandbox, owner, receiver.url, signing_key="s3cret")

    ids = calendly_sandbox.fire("invitee.created")
    [delivery] = calendly_sandbox.wait_for_deliveries(timeout=5)

    assert ids == [delivery.id]
    assert delivery.state == "delivered"
    assert delivery.subscription_uri == subscription["uri"]
    [request] = receiver.received
    assert request.path == "/hooks/calendly"
    assert request.headers["Content-Type"] == "application/json"
    assert "Calendly" in request.headers["User-Agent"]
    signature = request.headers["Calendly-Webhook-Signature"]
    assert verify(signature, request.body, "s3cret")
    assert not verify(signature, request.body, "another key")
    assert abs(int(signature.split(",")[0].removeprefix("t=")) - time.time()) < 60
    body = json.loads(request.body)
    assert body["event"] == "invitee.created"
    assert body["created_by"] == f"{calendly_sandbox.url}/users/{seed.OWNER_USER_UUID}"
    assert request.body == delivery.body


def test_the_delivered_invitee_is_real_in_the_api(calendly_sandbox, owner, receiver_factory):
    receiver = receiver_factory(200)
    subscribe(calendly_sandbox, owner, receiver.url)

    calendly_sandbox.fire("invitee.created", email="booked@example.com", name="Booked Person")
    calendly_sandbox.wait_for_deliveries(timeout=5)

    payload = json.loads(receiver.received[0].body)["payload"]
    assert payload["email"] == "booked@example.com"
    invitee = owner.get(payload["uri"]).json()["resource"]
    assert invitee["email"] == "booked@example.com"
    assert invitee["name"] == "Booked Person"
    event = owner.get(payload["event"]).json()["resource"]
    assert event == payload["scheduled_event"]
    assert event["status"] == "active"


def test_a_subscription_without_a_signing_key_is_signed_with_the_organization_key(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(200)
    subscribe(calendly_sandbox, owner, receiver.url, signing_key=None)

    calendly_sandbox.fire("invitee.created")
    calendly_sandbox.wait_for_deliveries(timeout=5)

    request = receiver.received[0]
    assert calendly_sandbox.organization_signing_key == seed.ORGANIZATION_SIGNING_KEY
    assert verify(
        request.headers["Calendly-Webhook-Signature"],
        request.body,
        calendly_sandbox.organization_signing_key,
    )


def test_a_receiver_answering_500_gets_retries_then_the_subscription_is_disabled(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(500)
    subscription = subscribe(calendly_sandbox, owner, receiver.url)

    calendly_sandbox.fire("invitee.created")
    [delivery] = calendly_sandbox.wait_for_deliveries(timeout=5)

    assert delivery.state == "failed"
    assert [status for status, _ in delivery.attempts] == [500] * (len(TEST_RETRY_DELAYS) + 1)
    assert len(receiver.received) == len(TEST_RETRY_DELAYS) + 1
    assert {r.body for r in receiver.received} == {delivery.body}  # same body every time
    assert all(
        verify(r.headers["Calendly-Webhook-Signature"], r.body, "s3cret") for r in receiver.received
    )
    after = owner.get(subscription["uri"]).json()["resource"]
    assert after["state"] == "disabled"
    assert after["retry_started_at"] is not None
    # A disabled subscription receives nothing more.
    assert calendly_sandbox.fire("invitee.created") == []


def test_a_receiver_that_recovers_gets_the_delivery_on_a_retry(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(503, 200)
    subscription = subscribe(calendly_sandbox, owner, receiver.url)

    calendly_sandbox.fire("invitee.created")
    [delivery] = calendly_sandbox.wait_for_deliveries(timeout=5)

    assert delivery.state == "delivered"
    assert [status for status, _ in delivery.attempts] == [503, 200]
    after = owner.get(subscription["uri"]).json()["resource"]
    assert after["state"] == "active"
    assert after["retry_started_at"] is None


def test_a_receiver_that_never_answers_times_out_and_is_retried(receiver_factory):
    # A listening socket that never accepts: connecting works, reading the answer never does.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    with CalendlySandbox(delivery_retry_delays=(0.05,), delivery_timeout=(1, 0.2)) as sb:
        subscribe_on(sb, url)
        sb.fire("invitee.created")
        [delivery] = sb.wait_for_deliveries(timeout=5)
    silent.close()

    assert delivery.state == "failed"
    assert len(delivery.attempts) == 2
    assert all("timed out" in str(outcome) for outcome, _ in delivery.attempts)


def test_user_scope_subscriptions_get_only_their_users_events(
    calendly_sandbox, client_for, receiver_factory
):
    receiver = receiver_factory(200)
    member = client_for(seed.MEMBER_TOKEN)
    subscribe(
        calendly_sandbox,
        member,
        receiver.url,
        scope="user",
        user=f"{calendly_sandbox.url}/users/{seed.MEMBER_USER_UUID}",
    )

    assert calendly_sandbox.fire("invitee.created", user_uuid=seed.OWNER_USER_UUID) == []
    assert len(calendly_sandbox.fire("invitee.created", user_uuid=seed.MEMBER_USER_UUID)) == 1
    calendly_sandbox.wait_for_deliveries(timeout=5)

    payload = json.loads(receiver.received[0].body)["payload"]
    assert payload["scheduled_event"]["event_memberships"][0]["user"].endswith(
        seed.MEMBER_USER_UUID
    )


def test_events_reach_only_subscriptions_that_asked_for_them(
    calendly_sandbox, owner, receiver_factory
):
    created_only = receiver_factory(200)
    canceled_only = receiver_factory(200)
    subscribe(calendly_sandbox, owner, created_only.url, events=["invitee.created"])
    subscribe(calendly_sandbox, owner, canceled_only.url, events=["invitee.canceled"])

    calendly_sandbox.fire("invitee.canceled")
    calendly_sandbox.wait_for_deliveries(timeout=5)

    assert created_only.received == []
    assert json.loads(canceled_only.received[0].body)["event"] == "invitee.canceled"


def test_invitee_canceled_cancels_the_named_invitee_and_the_api_agrees(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(200)
    subscribe(calendly_sandbox, owner, receiver.url, events=["invitee.canceled"])
    invitee_uuid = seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS[0]

    calendly_sandbox.fire("invitee.canceled", invitee_uuid=invitee_uuid)
    calendly_sandbox.wait_for_deliveries(timeout=5)

    payload = json.loads(receiver.received[0].body)["payload"]
    assert payload["uri"].endswith(invitee_uuid)
    assert payload["status"] == "canceled"
    assert payload["cancellation"]["canceler_type"] == "invitee"
    assert owner.get(payload["uri"]).json()["resource"]["status"] == "canceled"


def test_a_lone_invitee_canceling_cancels_the_event(calendly_sandbox, owner, receiver_factory):
    receiver = receiver_factory(200)
    subscribe(calendly_sandbox, owner, receiver.url, events=["invitee.canceled"])

    calendly_sandbox.fire("invitee.canceled")
    calendly_sandbox.wait_for_deliveries(timeout=5)

    payload = json.loads(receiver.received[0].body)["payload"]
    assert owner.get(payload["event"]).json()["resource"]["status"] == "canceled"


def test_no_show_events_mark_and_unmark_the_invitee(calendly_sandbox, owner, receiver_factory):
    receiver = receiver_factory(200)
    subscribe(
        calendly_sandbox,
        owner,
        receiver.url,
        events=["invitee_no_show.created", "invitee_no_show.deleted"],
    )
    invitee_uuid = seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS[1]

    calendly_sandbox.fire("invitee_no_show.created", invitee_uuid=invitee_uuid)
    calendly_sandbox.fire("invitee_no_show.deleted", invitee_uuid=invitee_uuid)
    calendly_sandbox.wait_for_deliveries(timeout=5)

    # Deliveries run concurrently (as Calendly's do), so they may arrive in either order.
    bodies = {b["event"]: b for b in (json.loads(r.body) for r in receiver.received)}
    assert bodies["invitee_no_show.created"]["payload"]["no_show"]["uri"]
    assert bodies["invitee_no_show.deleted"]["payload"]["no_show"] is None


def test_routing_form_submissions_reach_organization_scope_only(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(200)
    subscribe(calendly_sandbox, owner, receiver.url, events=["routing_form_submission.created"])

    calendly_sandbox.fire("routing_form_submission.created")
    calendly_sandbox.wait_for_deliveries(timeout=5)

    payload = json.loads(receiver.received[0].body)["payload"]
    assert payload["routing_form"].endswith(seed.ROUTING_FORM_UUID)
    assert payload["questions_and_answers"][0]["answer"] == "IT & Software"


def test_fire_rejects_unknown_events():
    with pytest.raises(ValueError, match="unknown event"):
        CalendlySandbox().fire("meeting.booked")


def test_reset_abandons_pending_deliveries(receiver_factory):
    receiver = receiver_factory(500)
    with CalendlySandbox(delivery_retry_delays=(5,)) as sb:
        subscribe_on(sb, receiver.url)
        sb.fire("invitee.created")
        assert receiver.got_one.wait(5)

        sb.reset()

        assert sb.deliveries == []
        assert sb.wait_for_deliveries(timeout=1) == []
    assert len(receiver.received) == 1
