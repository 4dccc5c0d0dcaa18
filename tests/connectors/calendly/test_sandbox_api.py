"""The sandbox answers like Calendly API v2: auth, resources, pagination, validation, limits."""

from __future__ import annotations

import pytest

from connectors.calendly.sandbox import seed

from .spec import assert_conforms

pytestmark = pytest.mark.usefixtures("no_internet")

INVALID_ARGUMENT = {"title": "Invalid Argument", "message": "The supplied parameters are invalid."}
NOT_FOUND = {
    "title": "Resource Not Found",
    "message": "The server could not find the requested resource.",
}
UNAUTHENTICATED = {"title": "Unauthenticated", "message": "The access token is invalid"}


def uri(sb, collection: str, uuid: str) -> str:
    return f"{sb.url}/{collection}/{uuid}"


def org_uri(sb, uuid: str = seed.ORGANIZATION_UUID) -> str:
    return uri(sb, "organizations", uuid)


def user_uri(sb, uuid: str = seed.OWNER_USER_UUID) -> str:
    return uri(sb, "users", uuid)


# Authentication --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-known-token", f"Token {seed.OWNER_TOKEN}", "Bearer", "Basic dXNlcjpwdw=="],
    ids=["missing", "unknown", "wrong-scheme", "empty", "basic"],
)
def test_requests_without_a_known_bearer_token_get_calendlys_401(calendly_sandbox, authorization):
    import requests

    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{calendly_sandbox.url}/users/me", headers=headers, timeout=5)

    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_a_revoked_token_is_refused_and_an_added_one_accepted(calendly_sandbox, client_for):
    calendly_sandbox.add_token("sandbox-extra-token", seed.MEMBER_USER_UUID)
    member = client_for("sandbox-extra-token")
    assert member.get("/users/me").json()["resource"]["uri"].endswith(seed.MEMBER_USER_UUID)

    calendly_sandbox.revoke_token("sandbox-extra-token")

    assert member.get("/users/me").status_code == 401


def test_reset_restores_revoked_seed_tokens(calendly_sandbox, owner):
    calendly_sandbox.revoke_token(seed.OWNER_TOKEN)
    assert owner.get("/users/me").status_code == 401

    calendly_sandbox.reset()

    assert owner.get("/users/me").status_code == 200


# Users -----------------------------------------------------------------------------------------
def test_users_me_returns_the_owner_with_current_organization(calendly_sandbox, owner):
    response = owner.get("/users/me")

    assert response.status_code == 200
    user = response.json()["resource"]
    assert user["uri"] == user_uri(calendly_sandbox)
    assert user["current_organization"] == org_uri(calendly_sandbox)
    assert user["email"] == "olivia.owner@example.com"
    assert user["scheduling_url"].startswith("https://calendly.com/")


def test_a_colleague_is_visible_but_another_organizations_user_is_forbidden(owner):
    assert owner.get(f"/users/{seed.MEMBER_USER_UUID}").status_code == 200

    response = owner.get(f"/users/{seed.OTHER_ORG_USER_UUID}")

    assert response.status_code == 403
    assert response.json()["title"] == "Permission Denied"


def test_unknown_users_and_unknown_paths_get_404(owner):
    assert owner.get("/users/NOSUCHUSER000000").json() == NOT_FOUND
    response = owner.get("/no_such_endpoint")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_organization_memberships_list_the_organizations_three_members(calendly_sandbox, owner):
    response = owner.get("/organization_memberships", organization=org_uri(calendly_sandbox))

    assert response.status_code == 200
    roles = {m["user"]["uri"].rsplit("/", 1)[1]: m["role"] for m in response.json()["collection"]}
    assert roles == {
        seed.OWNER_USER_UUID: "owner",
        seed.ADMIN_USER_UUID: "admin",
        seed.MEMBER_USER_UUID: "user",
    }


# Event types -----------------------------------------------------------------------------------
def test_event_types_without_user_or_organization_get_400_with_details(owner):
    response = owner.get("/event_types")

    assert response.status_code == 400
    body = response.json()
    assert {k: body[k] for k in ("title", "message")} == INVALID_ARGUMENT
    assert body["details"][0]["parameter"] == "organization"


def test_event_types_of_a_user_can_be_filtered_to_active_ones(calendly_sandbox, owner):
    everything = owner.get("/event_types", user=user_uri(calendly_sandbox)).json()["collection"]
    active = owner.get("/event_types", user=user_uri(calendly_sandbox), active="true").json()

    assert {t["uri"].rsplit("/", 1)[1] for t in everything} == set(seed.OWNER_EVENT_TYPE_UUIDS)
    assert seed.INACTIVE_EVENT_TYPE_UUID not in {
        t["uri"].rsplit("/", 1)[1] for t in active["collection"]
    }
    assert [t["name"] for t in everything] == sorted(t["name"] for t in everything)


def test_organization_event_types_need_an_owner_or_admin(calendly_sandbox, client_for):
    member = client_for(seed.MEMBER_TOKEN)
    admin = client_for(seed.ADMIN_TOKEN)

    assert member.get("/event_types", organization=org_uri(calendly_sandbox)).status_code == 403
    assert admin.get("/event_types", organization=org_uri(calendly_sandbox)).status_code == 200


# Scheduled events and pagination ---------------------------------------------------------------
def test_pagination_walks_all_45_events_with_count_10_and_every_page_conforms(
    calendly_sandbox, owner
):
    url, seen, pages = f"/scheduled_events?user={user_uri(calendly_sandbox)}&count=10", [], 0
    while url:
        page = owner.get(url).json()
        seen += [event["uri"] for event in page["collection"]]
        url = page["pagination"]["next_page"]
        pages += 1

    assert pages == 5
    assert seen == [uri(calendly_sandbox, "scheduled_events", u) for u in seed.OWNER_EVENT_UUIDS]
    assert assert_conforms(calendly_sandbox.exchanges) == 5


def test_pagination_links_keep_the_filters_and_go_back_too(calendly_sandbox, owner):
    first = owner.get("/scheduled_events", user=user_uri(calendly_sandbox), status="active")
    second = owner.get(first.json()["pagination"]["next_page"]).json()

    pagination = first.json()["pagination"]
    assert pagination["next_page"].startswith(f"{calendly_sandbox.url}/scheduled_events?")
    assert "status=active" in pagination["next_page"]
    assert pagination["previous_page"] is None
    assert pagination["previous_page_token"] is None
    assert {e["status"] for e in second["collection"]} == {"active"}
    back = owner.get(second["pagination"]["previous_page"]).json()
    assert back["collection"] == first.json()["collection"]


def test_the_last_page_has_no_next_page(calendly_sandbox, owner):
    page = owner.get("/scheduled_events", user=user_uri(calendly_sandbox), count=100).json()

    assert len(page["collection"]) == seed.OWNER_EVENT_COUNT
    assert page["pagination"]["next_page"] is None
    assert page["pagination"]["next_page_token"] is None


@pytest.mark.parametrize("count", ["0", "101", "ten"])
def test_count_outside_1_to_100_gets_400_with_details(calendly_sandbox, owner, count):
    response = owner.get("/scheduled_events", user=user_uri(calendly_sandbox), count=count)

    assert response.status_code == 400
    assert response.json()["details"][0]["parameter"] == "count"


def test_a_page_token_used_with_other_filters_is_rejected(calendly_sandbox, owner):
    token = owner.get("/scheduled_events", user=user_uri(calendly_sandbox)).json()["pagination"][
        "next_page_token"
    ]

    response = owner.get(
        "/scheduled_events", user=user_uri(calendly_sandbox), status="canceled", page_token=token
    )

    assert response.status_code == 400
    assert response.json()["details"] == [
        {"parameter": "page_token", "message": "is invalid or does not match the other parameters"}
    ]


def test_scheduled_events_filter_by_status_time_window_email_and_sort(calendly_sandbox, owner):
    me = user_uri(calendly_sandbox)
    canceled = owner.get("/scheduled_events", user=me, status="canceled", count=100).json()
    window = owner.get(
        "/scheduled_events",
        user=me,
        min_start_time="2025-03-10T00:00:00.000000Z",
        max_start_time="2025-03-20T00:00:00Z",
        sort="start_time:desc",
    ).json()["collection"]
    repeat = owner.get("/scheduled_events", user=me, invitee_email=seed.REPEAT_INVITEE_EMAIL)

    assert len(canceled["collection"]) == 9
    assert {e["status"] for e in canceled["collection"]} == {"canceled"}
    assert all("cancellation" in e for e in canceled["collection"])
    starts = [e["start_time"] for e in window]
    assert starts == sorted(starts, reverse=True)
    assert all("2025-03-10" <= s < "2025-03-20" for s in starts)
    assert len(starts) == 5
    assert len(repeat.json()["collection"]) == 5


def test_invalid_filters_are_all_reported_at_once(calendly_sandbox, owner):
    response = owner.get(
        "/scheduled_events",
        user=user_uri(calendly_sandbox),
        status="done",
        min_start_time="yesterday",
        invitee_email="nobody",
        sort="name:asc",
    )

    assert response.status_code == 400
    assert {d["parameter"] for d in response.json()["details"]} == {
        "status",
        "min_start_time",
        "invitee_email",
        "sort",
    }


def test_organization_events_need_an_owner_or_admin(calendly_sandbox, client_for):
    member = client_for(seed.MEMBER_TOKEN)
    admin = client_for(seed.ADMIN_TOKEN)
    params = {"organization": org_uri(calendly_sandbox), "count": 100}

    denied = member.get("/scheduled_events", **params)
    allowed = admin.get("/scheduled_events", **params).json()["collection"]

    assert denied.status_code == 403
    assert denied.json()["message"] == "You do not have permission"
    expected = seed.OWNER_EVENT_COUNT + seed.ADMIN_EVENT_COUNT + seed.MEMBER_EVENT_COUNT
    assert len(allowed) == expected


def test_a_colleagues_events_need_the_organization_parameter_too(calendly_sandbox, client_for):
    member = client_for(seed.MEMBER_TOKEN)

    response = member.get("/scheduled_events", user=user_uri(calendly_sandbox))

    assert response.status_code == 403
    assert response.json()["message"].startswith("Please also specify organization")


def test_another_organizations_scheduled_event_is_forbidden(owner):
    response = owner.get(f"/scheduled_events/{seed.OTHER_ORG_EVENT_UUID}")

    assert response.status_code == 403
    assert response.json() == {
        "title": "Permission Denied",
        "message": "You are not allowed to view this event",
    }
    assert owner.get("/scheduled_events/NOSUCHEVENT00000").json() == NOT_FOUND


def test_a_scheduled_event_counts_its_invitees(owner):
    event = owner.get(f"/scheduled_events/{seed.MULTI_INVITEE_EVENT_UUID}").json()["resource"]

    assert event["invitees_counter"] == {"total": 3, "active": 2, "limit": 10}
    assert event["event_memberships"][0]["user"].endswith(seed.OWNER_USER_UUID)


def test_invitees_list_filters_by_status_and_each_invitee_can_be_fetched(owner):
    path = f"/scheduled_events/{seed.MULTI_INVITEE_EVENT_UUID}/invitees"

    everyone = owner.get(path).json()["collection"]
    active = owner.get(path, status="active").json()["collection"]
    newest_first = owner.get(path, sort="created_at:desc").json()["collection"]
    one = owner.get(everyone[2]["uri"])

    assert [i["uri"].rsplit("/", 1)[1] for i in everyone] == list(
        seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS
    )
    assert len(active) == 2
    assert newest_first == list(reversed(everyone))
    assert one.status_code == 200
    assert one.json()["resource"]["status"] == "canceled"


def test_invitees_of_another_organizations_event_are_forbidden(owner):
    response = owner.get(f"/scheduled_events/{seed.OTHER_ORG_EVENT_UUID}/invitees")

    assert response.status_code == 403


# Webhook subscriptions -------------------------------------------------------------------------
def subscription_body(sb, url="https://example.com/hooks/calendly", **overrides):
    body = {
        "url": url,
        "events": ["invitee.created", "invitee.canceled"],
        "organization": org_uri(sb),
        "scope": "organization",
        "signing_key": "a-shared-secret",
    }
    return {**body, **overrides}


def test_creating_a_subscription_returns_201_and_it_appears_in_the_list(calendly_sandbox, owner):
    created = owner.post("/webhook_subscriptions", json=subscription_body(calendly_sandbox))

    assert created.status_code == 201
    resource = created.json()["resource"]
    assert resource["state"] == "active"
    assert resource["callback_url"] == "https://example.com/hooks/calendly"
    assert resource["creator"] == user_uri(calendly_sandbox)
    assert "signing_key" not in resource
    listed = owner.get(
        "/webhook_subscriptions", organization=org_uri(calendly_sandbox), scope="organization"
    ).json()["collection"]
    assert listed == [resource]
    assert owner.get(resource["uri"]).json()["resource"] == resource


def test_the_same_url_again_gets_409_already_exists(calendly_sandbox, owner):
    body = subscription_body(calendly_sandbox)
    assert owner.post("/webhook_subscriptions", json=body).status_code == 201

    response = owner.post("/webhook_subscriptions", json=body)

    assert response.status_code == 409
    assert response.json() == {
        "title": "Already Exists",
        "message": "Hook with this url already exists",
    }


def test_a_free_plan_gets_403_upgrade(calendly_sandbox, client_for):
    free = client_for(seed.FREE_PLAN_TOKEN)
    body = subscription_body(
        calendly_sandbox, organization=org_uri(calendly_sandbox, seed.FREE_ORGANIZATION_UUID)
    )

    response = free.post("/webhook_subscriptions", json=body)

    assert response.status_code == 403
    assert response.json() == {
        "title": "Permission Denied",
        "message": "Please upgrade your Calendly account to Professional",
    }


def test_a_user_scoped_subscription_needs_the_user_and_is_listed_per_user(
    calendly_sandbox, client_for
):
    member = client_for(seed.MEMBER_TOKEN)
    me = user_uri(calendly_sandbox, seed.MEMBER_USER_UUID)

    missing_user = member.post(
        "/webhook_subscriptions", json=subscription_body(calendly_sandbox, scope="user")
    )
    created = member.post(
        "/webhook_subscriptions", json=subscription_body(calendly_sandbox, scope="user", user=me)
    )
    listed = member.get(
        "/webhook_subscriptions", organization=org_uri(calendly_sandbox), scope="user", user=me
    )

    assert missing_user.status_code == 400
    assert missing_user.json()["details"] == [{"parameter": "user", "message": "is required"}]
    assert created.status_code == 201
    assert created.json()["resource"]["user"] == me
    assert [s["uri"] for s in listed.json()["collection"]] == [created.json()["resource"]["uri"]]


def test_invalid_subscription_bodies_get_400_naming_each_problem(calendly_sandbox, owner):
    response = owner.post(
        "/webhook_subscriptions",
        json={
            "url": "not a url",
            "events": ["invitee.created", "invitee.created", "meeting.booked"],
        },
    )

    assert response.status_code == 400
    problems = {(d["parameter"], d["message"]) for d in response.json()["details"]}
    assert ("url", "must be a valid http or https URL") in problems
    assert ("events", "must not contain duplicates") in problems
    assert ("organization", "is required") in problems
    assert ("scope", "is required") in problems
    assert any(p == "events" and "meeting.booked" in m for p, m in problems)


def test_newer_no_show_events_can_be_subscribed(calendly_sandbox, owner):
    body = subscription_body(
        calendly_sandbox, events=["invitee_no_show.created", "invitee_no_show.deleted"]
    )

    assert owner.post("/webhook_subscriptions", json=body).status_code == 201


def test_listing_subscriptions_requires_organization_and_scope(owner):
    response = owner.get("/webhook_subscriptions")

    assert response.status_code == 400
    assert {d["parameter"] for d in response.json()["details"]} == {"organization", "scope"}


def test_delete_gives_204_then_404(calendly_sandbox, owner):
    created = owner.post("/webhook_subscriptions", json=subscription_body(calendly_sandbox))
    subscription = created.json()["resource"]["uri"]

    deleted = owner.delete(subscription)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert owner.get(subscription).status_code == 404
    assert owner.delete(subscription).status_code == 404
    assert calendly_sandbox.subscriptions == []


def test_another_organization_cannot_see_or_delete_a_subscription(
    calendly_sandbox, owner, client_for
):
    created = owner.post("/webhook_subscriptions", json=subscription_body(calendly_sandbox))
    outsider = client_for(seed.OTHER_ORG_TOKEN)

    assert outsider.get(created.json()["resource"]["uri"]).status_code == 403
    assert outsider.delete(created.json()["resource"]["uri"]).status_code == 403


# Rate limit ------------------------------------------------------------------------------------
def test_every_answer_carries_the_rate_limit_headers(calendly_sandbox, owner, client_for):
    answers = [owner.get("/users/me"), owner.get("/nope"), client_for(None).get("/users/me")]

    for answer in answers:
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
            answer.headers
        )
    assert answers[0].headers["X-RateLimit-Limit"] == "500"
    assert int(answers[1].headers["X-RateLimit-Remaining"]) == 498


def test_over_budget_gets_429_with_rate_limit_headers_and_retry_after(
    calendly_sandbox, owner, client_for
):
    calendly_sandbox.set_rate_limit(3)
    answers = [owner.get("/users/me") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["X-RateLimit-Reset"]) <= 60
    assert refused.headers["Retry-After"] == refused.headers["X-RateLimit-Reset"]
    assert refused.json()["title"] == "Too Many Requests"
    # The budget is per token: another token is unaffected.
    assert client_for(seed.ADMIN_TOKEN).get("/users/me").status_code == 200
    assert_conforms(calendly_sandbox.exchanges)


def test_free_plans_get_a_tenth_of_the_budget(client_for):
    response = client_for(seed.FREE_PLAN_TOKEN).get("/users/me")

    assert response.headers["X-RateLimit-Limit"] == "50"


def test_reset_restores_the_configured_rate_limit(calendly_sandbox, owner):
    calendly_sandbox.set_rate_limit(1)
    owner.get("/users/me")
    assert owner.get("/users/me").status_code == 429

    calendly_sandbox.reset()

    assert owner.get("/users/me").headers["X-RateLimit-Limit"] == "500"
