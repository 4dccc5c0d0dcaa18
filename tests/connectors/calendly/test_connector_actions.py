"""Every Calendly action and resource function, run against the sandbox over HTTP."""

from __future__ import annotations

import pytest

from connectors import Credentials, Runtime, TTLCache, Unlimited, get_connector
from connectors.calendly.sandbox import seed
from connectors.errors import (
    ApiError,
    AuthenticationFailed,
    FilterError,
    NotFound,
    PermissionDenied,
)
from tests.connectors.calendly.spec import assert_conforms, operation_template

INVALID_TOKEN_MESSAGE = (
    "Calendly rejected the Personal Access Token (401). Check the token and validate again."
)


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


def uri(sandbox, collection: str, uuid: str) -> str:
    return f"{sandbox.url}/{collection}/{uuid}"


def api_calls(sandbox, path: str) -> int:
    return sum(1 for e in sandbox.exchanges if e.path == path)


# Validation -----------------------------------------------------------------------------------
def test_validate_reports_the_user_and_organization_the_token_reaches(
    calendly, owner, runtime, calendly_sandbox
):
    account = calendly.validate(owner, runtime=runtime)

    assert account.uri == uri(calendly_sandbox, "users", seed.OWNER_USER_UUID)
    assert account.organization == uri(calendly_sandbox, "organizations", seed.ORGANIZATION_UUID)
    assert account.name == "Olivia Owner"
    assert account.email == "olivia.owner@example.com"
    assert account.as_dict()["organization"] == account.organization


def test_validate_with_a_revoked_token_says_exactly_what_to_do(calendly, runtime, calendly_sandbox):
    calendly_sandbox.revoke_token(seed.MEMBER_TOKEN)

    with pytest.raises(AuthenticationFailed) as caught:
        calendly.validate(credentials(seed.MEMBER_TOKEN), runtime=runtime)

    assert str(caught.value) == INVALID_TOKEN_MESSAGE
    assert caught.value.status == 401
    assert caught.value.retryable is False
    assert caught.value.attempts == 1


def test_validate_follows_the_base_url_environment_variable(
    calendly, owner, calendly_sandbox, monkeypatch
):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)

    account = calendly.validate(owner, runtime=Runtime(rate_limiter=Unlimited()))

    assert account.uri == uri(calendly_sandbox, "users", seed.OWNER_USER_UUID)


# Users ----------------------------------------------------------------------------------------
def test_users_me_returns_the_current_user(calendly, owner, runtime, calendly_sandbox):
    result = calendly.run_action("users/me", owner, runtime=runtime)

    assert result.status == 200
    assert result.data["resource"]["slug"] == "olivia-owner"
    assert result.items is None
    assert [(r.method, r.status, r.attempts) for r in result.requests] == [("GET", 200, 1)]
    assert calendly_sandbox.exchanges[-1].method == "GET"


@pytest.mark.parametrize("form", ["uuid", "uri"])
def test_users_accepts_a_uuid_or_the_users_full_uri(
    calendly, owner, runtime, calendly_sandbox, form
):
    value = seed.MEMBER_USER_UUID
    if form == "uri":
        value = f"https://api.calendly.com/users/{seed.MEMBER_USER_UUID}"

    result = calendly.run_action("users", owner, filters=[("uuid", value)], runtime=runtime)

    assert result.data["resource"]["name"] == "Mia Member"
    assert calendly_sandbox.exchanges[-1].path == f"/users/{seed.MEMBER_USER_UUID}"


def test_a_user_of_another_organization_is_permission_denied(calendly, owner, runtime):
    with pytest.raises(PermissionDenied) as caught:
        calendly.run_action(
            "users", owner, filters=[("uuid", seed.OTHER_ORG_USER_UUID)], runtime=runtime
        )

    assert caught.value.status == 403
    assert str(caught.value).startswith("Calendly denied permission (403)")


# Event types ----------------------------------------------------------------------------------
def test_event_types_lists_the_users_event_types(calendly, owner, runtime):
    result = calendly.run_action(
        "event_types", owner, filters=[("user", "~{GetUserUrl}~")], runtime=runtime
    )

    assert len(result.items) == 4
    assert result.data["collection"] == result.items


def test_event_types_filters_are_typed_before_they_are_sent(
    calendly, owner, runtime, calendly_sandbox
):
    result = calendly.run_action(
        "event_types",
        owner,
        filters=[("organization", "~{GetOrganizationUrl}~"), ("active", "false")],
        runtime=runtime,
    )

    assert [item["active"] for item in result.items] == [False, False]
    assert calendly_sandbox.exchanges[-1].query["active"] == ["false"]


# Scheduled events -----------------------------------------------------------------------------
def test_scheduled_events_follows_every_page(calendly, owner, runtime, calendly_sandbox):
    result = calendly.run_action(
        "scheduled_events", owner, filters=[("user", "~{GetUserUrl}~")], runtime=runtime
    )

    assert len(result.items) == seed.OWNER_EVENT_COUNT
    assert result.pages == 3  # Calendly's default page of 20
    assert result.truncated is False
    assert len({item["uri"] for item in result.items}) == seed.OWNER_EVENT_COUNT
    assert api_calls(calendly_sandbox, "/scheduled_events") == 3


def test_scheduled_events_are_the_tokens_own_unless_an_organization_is_named(
    calendly, owner, runtime
):
    mine = calendly.run_action("scheduled_events", owner, runtime=runtime)
    organization = calendly.run_action(
        "scheduled_events",
        owner,
        filters=[("organization", "~{GetOrganizationUrl}~"), ("count", 100)],
        runtime=runtime,
    )

    assert len(mine.items) == seed.OWNER_EVENT_COUNT
    assert len(organization.items) == (
        seed.OWNER_EVENT_COUNT + seed.ADMIN_EVENT_COUNT + seed.MEMBER_EVENT_COUNT
    )


def test_scheduled_events_stops_at_the_callers_limit(calendly, owner, runtime, calendly_sandbox):
    result = calendly.run_action(
        "scheduled_events",
        owner,
        filters=[("user", "~{GetUserUrl}~"), ("count", "10")],
        limit=25,
        runtime=runtime,
    )

    assert len(result.items) == 25
    assert result.pages == 3
    assert result.truncated is True
    assert api_calls(calendly_sandbox, "/scheduled_events") == 3


def test_a_small_limit_asks_calendly_for_a_small_page(calendly, owner, runtime, calendly_sandbox):
    result = calendly.run_action(
        "scheduled_events", owner, filters=[("user", "~{GetUserUrl}~")], limit=5, runtime=runtime
    )

    assert len(result.items) == 5
    assert result.pages == 1
    assert calendly_sandbox.exchanges[-1].query["count"] == ["5"]


def test_scheduled_events_filters_by_status_and_time(calendly, owner, runtime):
    result = calendly.run_action(
        "scheduled_events",
        owner,
        filters=[
            ("user", "~{GetUserUrl}~"),
            ("status", "canceled"),
            ("sort", "start_time:desc"),
            ("min_start_time", "2025-03-01T00:00:00Z"),
            ("max_start_time", "2025-12-31T00:00:00Z"),
            ("count", 100),
        ],
        runtime=runtime,
    )

    assert result.items
    assert {item["status"] for item in result.items} == {"canceled"}
    starts = [item["start_time"] for item in result.items]
    assert starts == sorted(starts, reverse=True)


def test_scheduled_events_by_invitee_email(calendly, owner, runtime):
    result = calendly.run_action(
        "scheduled_events",
        owner,
        filters=[("user", "~{GetUserUrl}~"), ("invitee_email", seed.REPEAT_INVITEE_EMAIL)],
        runtime=runtime,
    )

    assert len(result.items) == 5  # owner events 0, 9, 18, 27, 36


def test_organization_events_need_an_owner_or_admin(calendly, runtime):
    member = credentials(seed.MEMBER_TOKEN)

    with pytest.raises(PermissionDenied):
        calendly.run_action(
            "scheduled_events",
            member,
            filters=[("organization", "~{GetOrganizationUrl}~")],
            runtime=runtime,
        )


def test_calendlys_own_400_carries_its_details(calendly, owner, runtime, calendly_sandbox):
    not_a_user = uri(calendly_sandbox, "organizations", seed.ORGANIZATION_UUID)

    with pytest.raises(ApiError) as caught:
        calendly.run_action(
            "scheduled_events", owner, filters=[("user", not_a_user)], runtime=runtime
        )

    assert caught.value.status == 400
    assert caught.value.title == "Invalid Argument"
    assert caught.value.details == [{"parameter": "user", "message": "must be a valid user URI"}]
    assert "user: must be a valid user URI" in str(caught.value)
    assert caught.value.retryable is False


@pytest.mark.parametrize("form", ["uuid", "uri"])
def test_scheduled_event_accepts_a_uuid_or_the_events_uri(
    calendly, owner, runtime, calendly_sandbox, form
):
    value = seed.CANCELED_EVENT_UUID
    if form == "uri":
        value = uri(calendly_sandbox, "scheduled_events", seed.CANCELED_EVENT_UUID)

    result = calendly.run_action(
        "scheduled_event", owner, filters=[("uuid", value)], runtime=runtime
    )

    assert result.data["resource"]["status"] == "canceled"


def test_an_unknown_event_is_not_found_and_not_retried(calendly, owner, runtime, calendly_sandbox):
    with pytest.raises(NotFound) as caught:
        calendly.run_action("scheduled_event", owner, filters=[("uuid", "NOPE")], runtime=runtime)

    assert caught.value.status == 404
    assert "GET /scheduled_events/NOPE" in str(caught.value)
    assert api_calls(calendly_sandbox, "/scheduled_events/NOPE") == 1


def test_scheduled_event_invitees_lists_every_invitee(calendly, owner, runtime):
    event = f"https://api.calendly.com/scheduled_events/{seed.MULTI_INVITEE_EVENT_UUID}"

    result = calendly.run_action(
        "scheduled_event_invitees", owner, filters=[("uuid", event)], runtime=runtime
    )
    active = calendly.run_action(
        "scheduled_event_invitees",
        owner,
        filters=[("uuid", event), ("status", "active")],
        runtime=runtime,
    )

    assert [i["uri"].rsplit("/", 1)[-1] for i in result.items] == list(
        seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS
    )
    assert len(active.items) == 2


# Resource functions ---------------------------------------------------------------------------
def test_resource_functions_come_from_users_me(calendly, owner, runtime, calendly_sandbox):
    organization = calendly.resolve("GetOrganizationUrl", owner, runtime)
    user = calendly.resolve("GetUserUrl", owner, runtime)

    assert organization == uri(calendly_sandbox, "organizations", seed.ORGANIZATION_UUID)
    assert user == uri(calendly_sandbox, "users", seed.OWNER_USER_UUID)
    assert api_calls(calendly_sandbox, "/users/me") == 2  # one per function, then cached


def test_resource_functions_are_cached_per_credential(calendly, owner, runtime, calendly_sandbox):
    for _ in range(3):
        calendly.run_action(
            "event_types", owner, filters=[("user", "~{GetUserUrl}~")], runtime=runtime
        )
    member_result = calendly.run_action(
        "event_types",
        credentials(seed.MEMBER_TOKEN, "credential:member"),
        filters=[("user", "~{GetUserUrl}~")],
        runtime=runtime,
    )

    assert api_calls(calendly_sandbox, "/users/me") == 2  # the owner's once, the member's once
    assert {i["profile"]["owner"] for i in member_result.items} == {
        uri(calendly_sandbox, "users", seed.MEMBER_USER_UUID)
    }


def test_a_new_token_under_the_same_key_does_not_reuse_the_old_lookup(calendly, runtime):
    owner_first = credentials(seed.OWNER_TOKEN, "credential:7")
    member_later = credentials(seed.MEMBER_TOKEN, "credential:7")  # the token was replaced

    calendly.resolve("GetUserUrl", owner_first, runtime)
    user = calendly.resolve("GetUserUrl", member_later, runtime)

    assert user.endswith(seed.MEMBER_USER_UUID)


def test_resource_function_lookups_are_listed_with_the_actions_requests(calendly, owner, runtime):
    result = calendly.run_action(
        "event_types", owner, filters=[("user", "~{GetUserUrl}~")], runtime=runtime
    )

    assert [r.url.rsplit("/", 1)[-1] for r in result.requests] == ["me", "event_types"]
    assert result.request["url"].endswith("/event_types")


def test_an_unknown_placeholder_fails_before_any_request(
    calendly, owner, runtime, calendly_sandbox
):
    with pytest.raises(FilterError) as caught:
        calendly.run_action(
            "event_types", owner, filters=[("user", "~{GetUserURI}~")], runtime=runtime
        )

    assert "~{GetUserURI}~" in str(caught.value)
    assert "~{GetOrganizationUrl}~, ~{GetUserUrl}~" in str(caught.value)
    assert calendly_sandbox.exchanges == []


# Conformance ----------------------------------------------------------------------------------
def test_every_action_conforms_to_calendlys_openapi_document(
    calendly, owner, runtime, calendly_sandbox, receiver_factory
):
    receiver = receiver_factory(200)
    run = calendly.run_action
    run("users/me", owner, runtime=runtime)
    run("users", owner, filters=[("uuid", seed.ADMIN_USER_UUID)], runtime=runtime)
    run("event_types", owner, filters=[("user", "~{GetUserUrl}~"), ("count", 2)], runtime=runtime)
    run(
        "scheduled_events",
        owner,
        filters=[("organization", "~{GetOrganizationUrl}~"), ("status", "active")],
        limit=30,
        runtime=runtime,
    )
    run(
        "scheduled_event", owner, filters=[("uuid", seed.MULTI_INVITEE_EVENT_UUID)], runtime=runtime
    )
    run(
        "scheduled_event_invitees",
        owner,
        filters=[("uuid", seed.MULTI_INVITEE_EVENT_UUID), ("sort", "created_at:desc")],
        runtime=runtime,
    )
    created = run(
        "webhook_subscription",
        owner,
        filters=[
            ("events[]", "invitee.created"),
            ("events[]", "invitee.canceled"),
            ("scope", "organization"),
            ("organization", "~{GetOrganizationUrl}~"),
            ("url", receiver.url),
            ("signing_key", "a-signing-key-for-the-test"),
        ],
        runtime=runtime,
    )
    hook = created.data["resource"]["uri"]
    run("webhook_subscriptions", owner, filters=[("scope", "organization")], runtime=runtime)
    run("webhook_subscription_get", owner, filters=[("uuid", hook)], runtime=runtime)
    deleted = run("webhook_subscription_delete", owner, filters=[("uuid", hook)], runtime=runtime)

    exchanges = calendly_sandbox.exchanges
    assert assert_conforms(exchanges) == len(exchanges)
    operations = {(e.method, operation_template(e.method, e.path)) for e in exchanges}
    assert operations == {
        ("GET", "/users/me"),
        ("GET", "/users/{uuid}"),
        ("GET", "/event_types"),
        ("GET", "/scheduled_events"),
        ("GET", "/scheduled_events/{uuid}"),
        ("GET", "/scheduled_events/{uuid}/invitees"),
        ("POST", "/webhook_subscriptions"),
        ("GET", "/webhook_subscriptions"),
        ("GET", "/webhook_subscriptions/{webhook_uuid}"),
        ("DELETE", "/webhook_subscriptions/{webhook_uuid}"),
    }
    assert deleted.status == 204
    assert deleted.data is None
