"""Calendly webhook subscriptions through the connector, and real signed deliveries."""

from __future__ import annotations

import pytest

from connectors import Credentials, Runtime, TTLCache, Unlimited, get_connector
from connectors.calendly.sandbox import seed
from connectors.errors import AlreadyExists, FilterError, NotFound, PermissionDenied
from tests.connectors.calendly.spec import assert_conforms

SIGNING_KEY = "processflow-42-signing-key"


def credentials(token: str, key: str = "credential:1") -> Credentials:
    return Credentials(type="rest", secrets={"personal_access_token": token}, key=key)


@pytest.fixture
def calendly():
    return get_connector("calendly")


@pytest.fixture
def runtime(calendly_sandbox):
    return Runtime(
        base_urls={"calendly": calendly_sandbox.url},
        rate_limiter=Unlimited(),
        cache=TTLCache(),
        sleep=lambda seconds: None,
    )


@pytest.fixture
def owner():
    return credentials(seed.OWNER_TOKEN, "credential:owner")


def test_subscription_lifecycle_create_list_get_delete(
    calendly, owner, runtime, calendly_sandbox, receiver_factory
):
    url = receiver_factory(200).url

    created = calendly.create_subscription(
        owner,
        url=url,
        events=["invitee.created", "invitee.canceled"],
        scope="organization",
        signing_key=SIGNING_KEY,
        runtime=runtime,
    )
    listed = calendly.list_subscriptions(owner, scope="organization", runtime=runtime)
    fetched = calendly.get_subscription(owner, created.uri, runtime=runtime)
    calendly.delete_subscription(owner, created.id, runtime=runtime)

    assert created.callback_url == url
    assert created.events == ("invitee.created", "invitee.canceled")
    assert created.scope == "organization"
    assert created.state == "active"
    assert created.organization == f"{calendly_sandbox.url}/organizations/{seed.ORGANIZATION_UUID}"
    assert [s.uri for s in listed] == [created.uri]
    assert fetched == created
    assert calendly_sandbox.subscriptions == []
    assert created.as_dict()["id"] == created.id
    assert assert_conforms(calendly_sandbox.exchanges) > 0


def test_deleting_a_subscription_that_is_gone_is_not_found(calendly, owner, runtime):
    with pytest.raises(NotFound):
        calendly.delete_subscription(owner, "NOSUCHHOOK000000", runtime=runtime)


def test_subscribing_the_same_url_again_is_a_distinct_already_exists_error(
    calendly, owner, runtime, receiver_factory
):
    url = receiver_factory(200).url
    first = calendly.create_subscription(
        owner, url=url, events=["invitee.created"], scope="organization", runtime=runtime
    )

    with pytest.raises(AlreadyExists) as caught:
        calendly.create_subscription(
            owner, url=url, events=["invitee.canceled"], scope="organization", runtime=runtime
        )

    assert caught.value.status == 409
    assert caught.value.retryable is False
    assert caught.value.api_message == "Hook with this url already exists"
    # The portal adopts (or replaces) the existing one: it can find it by its callback URL.
    existing = calendly.list_subscriptions(owner, scope="organization", runtime=runtime)
    assert [s.uri for s in existing if s.callback_url == url] == [first.uri]


def test_free_plans_cannot_subscribe(calendly, runtime, receiver_factory):
    free = credentials(seed.FREE_PLAN_TOKEN)

    with pytest.raises(PermissionDenied) as caught:
        calendly.create_subscription(
            free,
            url=receiver_factory(200).url,
            events=["invitee.created"],
            scope="organization",
            runtime=runtime,
        )

    assert caught.value.status == 403
    assert "Please upgrade your Calendly account to Professional" in str(caught.value)


def test_user_scope_subscribes_the_tokens_own_user(
    calendly, runtime, calendly_sandbox, receiver_factory
):
    member = credentials(seed.MEMBER_TOKEN, "credential:member")

    created = calendly.create_subscription(
        member,
        url=receiver_factory(200).url,
        events=["invitee.created"],
        scope="user",
        runtime=runtime,
    )
    listed = calendly.list_subscriptions(member, scope="user", runtime=runtime)

    assert created.user == f"{calendly_sandbox.url}/users/{seed.MEMBER_USER_UUID}"
    assert [s.uri for s in listed] == [created.uri]


def test_the_create_action_builds_its_event_list_from_repeated_rows(
    calendly, owner, runtime, calendly_sandbox, receiver_factory
):
    url = receiver_factory(200).url

    result = calendly.run_action(
        "webhook_subscription",
        owner,
        filters=[
            ("events[]", "invitee.created"),
            ("events[]", "invitee.canceled"),
            ("scope", "organization"),
            ("organization", "~{GetOrganizationUrl}~"),
            ("url", url),
        ],
        runtime=runtime,
    )

    assert result.status == 201
    sent = calendly_sandbox.exchanges[-1]
    assert sent.method == "POST"
    assert __import__("json").loads(sent.request_body) == {
        "url": url,
        "events": ["invitee.created", "invitee.canceled"],
        "scope": "organization",
        "organization": f"{calendly_sandbox.url}/organizations/{seed.ORGANIZATION_UUID}",
    }


def test_an_unknown_event_is_refused_before_calling_calendly(
    calendly, owner, runtime, calendly_sandbox
):
    with pytest.raises(FilterError) as caught:
        calendly.create_subscription(
            owner,
            url="https://portal.example.com/hooks/1",
            events=["invitee.updated"],
            scope="organization",
            runtime=runtime,
        )

    assert "invitee_no_show.created" in str(caught.value)
    assert calendly_sandbox.exchanges == []


def test_a_delivery_verifies_with_the_subscriptions_signing_key(
    calendly, owner, runtime, calendly_sandbox, receiver_factory
):
    receiver = receiver_factory(200)
    calendly.create_subscription(
        owner,
        url=receiver.url,
        events=["invitee.created"],
        scope="organization",
        signing_key=SIGNING_KEY,
        runtime=runtime,
    )

    calendly_sandbox.fire("invitee.created", email="new.customer@example.com")
    calendly_sandbox.wait_for_deliveries(timeout=5)
    delivery = receiver.received[0]

    verdict = calendly.verify_delivery(delivery.headers, delivery.body, SIGNING_KEY)
    forged = calendly.verify_delivery(delivery.headers, delivery.body, "someone-elses-key")

    assert verdict.ok, verdict.reason
    assert not forged.ok
    assert calendly.event_name(delivery.body) == "invitee.created"
    assert calendly.dedupe_key(delivery.body).startswith("calendly:")


def test_every_retry_of_one_event_has_the_same_dedupe_key(
    calendly, owner, runtime, calendly_sandbox, receiver_factory
):
    receiver = receiver_factory(500, 200)  # the first attempt fails, Calendly retries
    calendly.create_subscription(
        owner,
        url=receiver.url,
        events=["invitee.created", "invitee.canceled"],
        scope="organization",
        signing_key=SIGNING_KEY,
        runtime=runtime,
    )

    calendly_sandbox.fire("invitee.created")
    calendly_sandbox.wait_for_deliveries(timeout=5)
    calendly_sandbox.fire("invitee.created")
    calendly_sandbox.wait_for_deliveries(timeout=5)

    keys = [calendly.dedupe_key(r.body) for r in receiver.received]
    assert len(keys) == 3
    assert keys[0] == keys[1]  # the retry
    assert keys[2] != keys[0]  # another booking
    assert all(
        calendly.verify_delivery(r.headers, r.body, SIGNING_KEY).ok for r in receiver.received
    )
