"""Everything the sandbox answers conforms to Calendly's OpenAPI document (see spec.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from connectors.calendly.sandbox import seed

from . import spec

pytestmark = pytest.mark.usefixtures("no_internet")


def broad_session(sb, client_for, receiver_factory) -> None:
    """Every endpoint, as owner, admin, member, free plan, outsider and nobody, with the
    successes and the errors each can produce."""
    owner, admin, member = (
        client_for(t) for t in (seed.OWNER_TOKEN, seed.ADMIN_TOKEN, seed.MEMBER_TOKEN)
    )
    free, outsider, nobody = (
        client_for(seed.FREE_PLAN_TOKEN),
        client_for(seed.OTHER_ORG_TOKEN),
        client_for(None),
    )
    org = f"{sb.url}/organizations/{seed.ORGANIZATION_UUID}"
    me = f"{sb.url}/users/{seed.OWNER_USER_UUID}"
    member_uri = f"{sb.url}/users/{seed.MEMBER_USER_UUID}"
    event = seed.MULTI_INVITEE_EVENT_UUID

    # Users and memberships.
    owner.get("/users/me")
    nobody.get("/users/me")
    client_for("Bearer-less garbage").get("/users/me")
    owner.get(f"/users/{seed.MEMBER_USER_UUID}")
    owner.get(f"/users/{seed.OTHER_ORG_USER_UUID}")
    owner.get("/users/NOSUCHUSER000000")
    owner.get("/organization_memberships", organization=org, count=2)
    owner.get("/organization_memberships", user=member_uri)
    owner.get("/organization_memberships", organization=org, email="adam.admin@example.com")
    owner.get("/organization_memberships")
    outsider.get("/organization_memberships", organization=org)
    memberships = owner.get("/organization_memberships", organization=org).json()["collection"]
    owner.get(memberships[0]["uri"])
    outsider.get(memberships[0]["uri"])
    owner.get("/organization_memberships/NOSUCHMEMBERSHIP")

    # Event types.
    owner.get("/event_types", user=me)
    owner.get("/event_types", user=me, active="false", sort="name:desc", count=1)
    owner.get("/event_types", organization=org, sort="created_at")
    member.get("/event_types", organization=org)
    owner.get("/event_types", user=f"{sb.url}/users/{seed.OTHER_ORG_USER_UUID}")
    outsider.get("/event_types", organization=org)
    owner.get("/event_types")
    owner.get("/event_types", user="not-a-uri", count=500)
    owner.get(f"/event_types/{seed.OWNER_EVENT_TYPE_UUIDS[0]}")
    owner.get(f"/event_types/{seed.OTHER_ORG_EVENT_TYPE_UUID}")
    owner.get("/event_types/NOSUCHTYPE000000")

    # Scheduled events: every page, filters, permissions, validation.
    url = f"/scheduled_events?user={me}&count=7"
    while url:
        url = owner.get(url).json()["pagination"]["next_page"]
    owner.get("/scheduled_events", organization=org, status="canceled", sort="start_time:desc")
    owner.get("/scheduled_events", organization=org, user=member_uri, count=100)
    owner.get(
        "/scheduled_events",
        user=me,
        invitee_email=seed.REPEAT_INVITEE_EMAIL,
        min_start_time="2025-03-01T00:00:00.000000Z",
        max_start_time="2025-06-01T00:00:00.000000Z",
    )
    member.get("/scheduled_events", organization=org)
    member.get("/scheduled_events", user=me)
    owner.get("/scheduled_events", user=f"{sb.url}/users/{seed.OTHER_ORG_USER_UUID}")
    outsider.get("/scheduled_events", organization=org)
    owner.get("/scheduled_events", user=me, page_token="forged")
    owner.get("/scheduled_events")
    owner.get("/scheduled_events", user=me, count=0, status="done")
    owner.get(f"/scheduled_events/{event}")
    owner.get(f"/scheduled_events/{seed.CANCELED_EVENT_UUID}")
    member.get(f"/scheduled_events/{event}")
    owner.get(f"/scheduled_events/{seed.OTHER_ORG_EVENT_UUID}")
    owner.get("/scheduled_events/NOSUCHEVENT00000")

    # Invitees.
    owner.get(f"/scheduled_events/{event}/invitees", count=2)
    owner.get(f"/scheduled_events/{event}/invitees", status="canceled", sort="created_at:desc")
    owner.get(f"/scheduled_events/{seed.CANCELED_EVENT_UUID}/invitees")
    owner.get(f"/scheduled_events/{event}/invitees", email="x@example.com")
    owner.get(f"/scheduled_events/{event}/invitees", count=101)
    owner.get(f"/scheduled_events/{seed.OTHER_ORG_EVENT_UUID}/invitees")
    owner.get("/scheduled_events/NOSUCHEVENT00000/invitees")
    for invitee in seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS:
        owner.get(f"/scheduled_events/{event}/invitees/{invitee}")
    member.get(f"/scheduled_events/{event}/invitees/{seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS[0]}")
    owner.get(f"/scheduled_events/{event}/invitees/NOSUCHINVITEE000")

    # Webhook subscriptions, then deliveries that change the calendar the API reports.
    receiver = receiver_factory(200)
    body = {
        "url": receiver.url,
        "events": ["invitee.created", "invitee.canceled", "invitee_no_show.created"],
        "organization": org,
        "scope": "organization",
        "signing_key": "conformance",
    }
    created = owner.post("/webhook_subscriptions", json=body).json()["resource"]
    owner.post("/webhook_subscriptions", json=body)
    member.post(
        "/webhook_subscriptions",
        json={**body, "scope": "user", "user": member_uri, "events": ["invitee.created"]},
    )
    member.post("/webhook_subscriptions", json=body)
    free.post(
        "/webhook_subscriptions",
        json={**body, "organization": f"{sb.url}/organizations/{seed.FREE_ORGANIZATION_UUID}"},
    )
    outsider.post("/webhook_subscriptions", json=body)
    owner.post("/webhook_subscriptions", json={"url": "nope", "events": []})
    owner.post("/webhook_subscriptions", data=b"not json")
    owner.get("/webhook_subscriptions", organization=org, scope="organization", count=1)
    member.get("/webhook_subscriptions", organization=org, scope="user", user=member_uri)
    member.get("/webhook_subscriptions", organization=org, scope="organization")
    member.get("/webhook_subscriptions", organization=org, scope="user", user=me)
    outsider.get("/webhook_subscriptions", organization=org, scope="organization")
    owner.get("/webhook_subscriptions")
    owner.get(created["uri"])
    outsider.get(created["uri"])
    sb.fire("invitee.created")
    sb.fire("invitee.canceled")
    sb.fire("invitee_no_show.created", invitee_uuid=seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS[0])
    for delivery in sb.wait_for_deliveries(timeout=5):
        payload = json.loads(delivery.body)["payload"]
        owner.get(payload["uri"])
        owner.get(payload["event"])
    outsider.delete(created["uri"])
    owner.delete(created["uri"])
    owner.get(created["uri"])
    owner.delete(created["uri"])
    owner.get("/no_such_endpoint")

    # Over budget.
    sb.set_rate_limit(3)
    for _ in range(4):
        admin.get("/users/me")


def test_a_broad_session_of_every_endpoint_conforms_to_the_openapi_document(
    calendly_sandbox, client_for, receiver_factory
):
    broad_session(calendly_sandbox, client_for, receiver_factory)
    exchanges = calendly_sandbox.exchanges
    # The unknown path is the one exchange the document cannot describe.
    unknown = [e for e in exchanges if e.path == "/no_such_endpoint"]

    checked = spec.assert_conforms([e for e in exchanges if e not in unknown])

    assert checked == len(exchanges) - 1 > 80
    assert spec.check_response(unknown[0]) == [
        "GET /no_such_endpoint -> 404: no such operation in the Calendly API"
    ]
    statuses = {e.status for e in exchanges}
    assert statuses >= {200, 201, 204, 400, 401, 403, 404, 409, 429}
    served = [e for e in exchanges if e not in unknown]
    operations = {(e.method, spec.operation_template(e.method, e.path)) for e in served}
    assert len(operations) == 14  # every endpoint the sandbox serves


def test_requests_the_sandbox_accepts_are_valid_requests(
    calendly_sandbox, client_for, receiver_factory
):
    broad_session(calendly_sandbox, client_for, receiver_factory)

    accepted = [e for e in calendly_sandbox.exchanges if e.status < 400]

    assert [p for e in accepted for p in spec.check_request(e)] == []


def test_every_webhook_body_conforms_to_the_webhook_payload_schema(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(200)
    owner.post(
        "/webhook_subscriptions",
        json={
            "url": receiver.url,
            "events": [
                "invitee.created",
                "invitee.canceled",
                "invitee_no_show.created",
                "invitee_no_show.deleted",
                "routing_form_submission.created",
            ],
            "organization": f"{calendly_sandbox.url}/organizations/{seed.ORGANIZATION_UUID}",
            "scope": "organization",
        },
    )
    invitee = seed.MULTI_INVITEE_EVENT_INVITEE_UUIDS[0]
    for event, options in [
        ("invitee.created", {}),
        ("invitee.created", {"scheduled_event_uuid": seed.MULTI_INVITEE_EVENT_UUID}),
        ("invitee.canceled", {"invitee_uuid": invitee}),
        ("invitee_no_show.created", {"invitee_uuid": invitee}),
        ("invitee_no_show.deleted", {"invitee_uuid": invitee}),
        ("routing_form_submission.created", {}),
    ]:
        calendly_sandbox.fire(event, **options)

    deliveries = calendly_sandbox.wait_for_deliveries(timeout=5)

    assert len(deliveries) == 6
    assert [p for d in deliveries for p in spec.check_webhook_body(d.body)] == []


def test_the_checker_reports_what_does_not_conform(calendly_sandbox, owner):
    owner.get("/users/me")
    owner.get("/scheduled_events", user=f"{calendly_sandbox.url}/users/{seed.OWNER_USER_UUID}")
    me, events = calendly_sandbox.exchanges
    resource = json.loads(me.response_body)["resource"]
    del resource["current_organization"]
    broken_body = dataclasses.replace(me, response_body=json.dumps({"resource": resource}).encode())
    broken_query = dataclasses.replace(events, query={**events.query, "status": ["done"]})
    undeclared = dataclasses.replace(me, status=418)

    assert spec.check_response(broken_body) == [
        "GET /users/me -> 200: body.resource: 'current_organization' is a required property"
    ]
    assert any("'status'" in p for p in spec.check_request(broken_query))
    assert "status 418 is not declared" in spec.check_response(undeclared)[0]
    with pytest.raises(AssertionError, match="1 conformance problem"):
        spec.assert_conforms([broken_body])


def test_faulted_exchanges_are_left_out_of_conformance(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/users/me", "non_json")
    owner.get("/users/me")

    assert spec.assert_conforms(calendly_sandbox.exchanges) == 0


def test_a_missing_openapi_document_fails_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv(spec.SPEC_ENV, str(tmp_path / "missing.yaml"))

    with pytest.raises(spec.SpecNotFoundError, match=r"missing\.yaml.*CALENDLY_OPENAPI_PATH"):
        spec.load_document.__wrapped__()


def test_only_the_known_spec_defects_are_repaired():
    with spec.spec_path().open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)

    repaired = spec._repair(document)

    assert sorted(set(repaired)) == sorted(
        {
            "value->enum title",
            "value->enum message",
            "enum string->list message",
            "event enum +invitee_no_show.created",
            "event enum +invitee_no_show.deleted",
        }
    )
    assert repaired.count("value->enum title") == 7  # six shared error responses and the 409
