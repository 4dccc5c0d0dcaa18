"""The engine runs a flow's steps through any host: in order, recorded, redacted, resumable."""

from __future__ import annotations

import json

import flows
from connectors.calendly.sandbox import seed
from flows.records import FAILED, SUCCEEDED
from flows.runner import LOST
from tests.flows.conftest import DESTINATION_TOKEN, Target
from tests.processflows.reliability.support import scripted_destination


def booking(**document) -> dict:
    """Fetch the scheduled event, map it, forward the document."""
    return {
        "steps": [
            {
                "name": "event",
                "type": "action",
                "application": "calendly",
                "credential": "calendly",
                "action": "scheduled_event",
                "filters": [["uuid", "{{ trigger.payload.event }}"]],
            },
            {
                "name": "document",
                "type": "map",
                "mapping": document
                or {
                    "email": "{{ trigger.payload.email }}",
                    "title": "{{ steps.event.resource.name }}",
                },
            },
            {
                "name": "forward",
                "type": "action",
                "application": "rest",
                "credential": "rest",
                "action": "post_json",
                "filters": [["path", "/bookings"]],
                "document": "{{ steps.document }}",
            },
        ]
    }


def trigger(sandbox, **payload) -> dict:
    event = f"{sandbox.url}/scheduled_events/{seed.OWNER_EVENT_UUIDS[1]}"
    return {
        "event": "invitee.created",
        "payload": {"email": "ada@example.com", "event": event, **payload},
    }


def execute(host, definition, document, **kw):
    return flows.execute_steps(
        definition, document, host=host, idempotency_prefix="run-1", purpose="test run", **kw
    )


def last_records(host) -> dict[int, flows.StepRecord]:
    """The latest record of each step, as a host that upserts by position keeps them."""
    return {record.position: record for record in host.records}


def test_steps_run_in_order_and_each_is_recorded(host, destination, calendly_sandbox):
    result = execute(host, booking(), trigger(calendly_sandbox))

    assert result.status == SUCCEEDED
    final = last_records(host)
    assert [(r.position, r.name, r.status) for r in final.values()] == [
        (0, "event", SUCCEEDED),
        (1, "document", SUCCEEDED),
        (2, "forward", SUCCEEDED),
    ]
    assert final[0].request["method"] == "GET"
    assert final[0].response_status == 200
    assert final[2].request["url"] == f"{destination.url}/bookings"
    title = final[0].output["resource"]["name"]
    assert destination.documents == [{"email": "ada@example.com", "title": title}]
    assert result.output == {"ok": True}


def test_each_action_is_shown_running_before_the_application_is_called(
    host, destination, calendly_sandbox
):
    execute(host, booking(), trigger(calendly_sandbox))

    assert [(r.name, r.status) for r in host.records] == [
        ("event", "running"),
        ("event", SUCCEEDED),
        ("document", SUCCEEDED),
        ("forward", "running"),
        ("forward", SUCCEEDED),
    ]


def test_an_action_is_sent_with_an_idempotency_key_of_the_run_and_step(
    host, destination, calendly_sandbox
):
    execute(host, booking(), trigger(calendly_sandbox))

    assert [r["key"] for r in destination.requests] == ["run-1:forward"]


def test_each_action_opens_its_credential_once_and_reports_the_outcome(
    host, destination, calendly_sandbox
):
    execute(host, booking(), trigger(calendly_sandbox))

    assert host.opened == 2
    assert host.audit == [
        {
            "credential": "calendly",
            "purpose": "test run",
            "action": "scheduled_event",
            "ok": True,
            "status": 200,
        },
        {
            "credential": "rest",
            "purpose": "test run",
            "action": "post_json",
            "ok": True,
            "status": 201,
        },
    ]


def test_a_resumed_run_does_not_send_an_action_that_succeeded_again(
    host, destination, calendly_sandbox
):
    execute(host, booking(), trigger(calendly_sandbox))
    previous = last_records(host)
    del previous[2]  # the worker died before recording the forward
    calendly_sandbox.reset()

    result = execute(host, booking(), trigger(calendly_sandbox), previous=previous)

    assert result.status == SUCCEEDED
    assert calendly_sandbox.exchanges == []  # the fetched event came from the record
    assert len(destination.documents) == 1  # the repeated key was honoured


def test_a_failing_destination_fails_the_step_retryably_with_its_request(
    host, destination, calendly_sandbox
):
    with scripted_destination(503) as failing:
        host.credentials["rest"].fields["base_url"] = failing.url
        result = execute(host, booking(), trigger(calendly_sandbox))

    assert result.status == FAILED
    assert result.step == "forward"
    assert result.failure.retryable is True
    assert result.failure.status == 503
    assert result.error.startswith("Step 'forward': ")
    forward = last_records(host)[2]
    assert forward.status == FAILED
    assert forward.request["method"] == "POST"
    assert forward.response_status == 503


def test_a_rejected_document_fails_the_run_for_good(host, destination, calendly_sandbox):
    with scripted_destination(400) as refusing:
        host.credentials["rest"].fields["base_url"] = refusing.url
        result = execute(host, booking(), trigger(calendly_sandbox))

    assert result.status == FAILED
    assert result.failure.retryable is False


def test_a_credential_the_host_cannot_open_fails_the_step_with_the_hosts_message(
    host, destination, calendly_sandbox
):
    del host.credentials["rest"]

    result = execute(host, booking(), trigger(calendly_sandbox))

    assert result.status == FAILED
    assert result.failure.retryable is False
    assert result.error == "Step 'forward': No credential 'rest' on this host."


def test_a_reference_to_a_missing_field_fails_the_map_step_saying_where(
    host, destination, calendly_sandbox
):
    result = execute(
        host, booking(email="{{ trigger.payload.missing }}"), trigger(calendly_sandbox)
    )

    assert result.status == FAILED
    assert result.step == "document"
    assert "trigger.payload.missing" in result.error
    assert destination.requests == []


def test_a_host_that_lost_the_run_stops_before_calling_the_application(
    host, destination, calendly_sandbox
):
    host.holding = False

    result = execute(host, booking(), trigger(calendly_sandbox))

    assert result.status == LOST
    assert host.records == []
    assert calendly_sandbox.exchanges == []


def test_records_and_results_never_hold_a_secret_even_when_the_destination_echoes_it(
    host, destination, calendly_sandbox
):
    with scripted_destination(201, echo="Authorization") as echoing:
        host.credentials["rest"].fields["base_url"] = echoing.url
        result = execute(
            host,
            booking(api_token="{{ trigger.payload.token }}", email="x"),
            trigger(calendly_sandbox, token="tok-9f8e7d6c5b4a"),
        )

    assert echoing.documents == [{"api_token": "tok-9f8e7d6c5b4a", "email": "x"}]
    stored = json.dumps([vars(r) for r in host.records], default=str) + json.dumps(result.output)
    assert DESTINATION_TOKEN not in stored
    assert seed.OWNER_TOKEN not in stored
    assert "tok-9f8e7d6c5b4a" not in stored
    assert result.output["seen"] == "Bearer [redacted]"


def test_a_step_that_subscribes_a_processflow_url_hands_over_its_signing_key(
    host, calendly_sandbox
):
    target = host.targets["https://hooks.example/abc/"] = Target("https://hooks.example/abc/")
    definition = {
        "steps": [
            {
                "name": "subscribe",
                "application": "calendly",
                "credential": "calendly",
                "action": "webhook_subscription",
                "filters": [
                    ["url", target.url],
                    ["events[]", "invitee.created"],
                    ["organization", "~{GetOrganizationUrl}~"],
                    ["scope", "organization"],
                ],
            }
        ]
    }

    result = execute(host, definition, {})

    assert result.status == SUCCEEDED
    subscription = target.subscriptions[0]
    assert subscription["callback_url"] == target.url
    created = [e for e in calendly_sandbox.exchanges if e.method == "POST"][-1]
    assert json.loads(created.request_body)["signing_key"] == target.key
    assert target.key not in json.dumps([vars(r) for r in host.records], default=str)


def test_subscribing_a_processflow_url_that_is_not_deployed_fails_saying_so(host, calendly_sandbox):
    definition = {
        "steps": [
            {
                "name": "subscribe",
                "application": "calendly",
                "credential": "calendly",
                "action": "webhook_subscription",
                "filters": [
                    ["url", "https://hooks.example/nobody/"],
                    ["events[]", "invitee.created"],
                ],
            }
        ]
    }

    result = execute(host, definition, {})

    assert result.status == FAILED
    assert result.error == "Step 'subscribe': Deploy that processflow first."
    assert calendly_sandbox.exchanges == []


def test_an_action_is_recorded_with_its_idempotency_key_before_the_application_is_called(
    host, destination, calendly_sandbox
):
    execute(host, booking(), trigger(calendly_sandbox))

    sending = [r for r in host.records if r.name == "forward" and r.status == "running"]
    assert [r.request for r in sending] == [{"idempotency_key": "run-1:forward"}]
    assert last_records(host)[2].request["idempotency_key"] == "run-1:forward"


def test_an_action_in_flight_when_its_attempt_stopped_is_sent_again_with_the_same_key(
    host, destination, calendly_sandbox, caplog
):
    execute(host, booking(), trigger(calendly_sandbox))
    previous = last_records(host)
    # The worker was killed after the call went out, before its answer was recorded.
    previous[2] = next(r for r in host.records if r.name == "forward" and r.status == "running")

    result = execute(host, booking(), trigger(calendly_sandbox), previous=previous)

    assert result.status == SUCCEEDED
    assert [r["key"] for r in destination.requests] == ["run-1:forward", "run-1:forward"]
    assert len(destination.documents) == 1  # the destination honours the key
    assert last_records(host)[2].attempts == 2
    assert "may have received it" in caplog.text
