"""GitHub's deliveries: signed ``X-Hub-Signature-256``, named by ``X-GitHub-Event`` and the
body's ``action``, identified by ``X-GitHub-Delivery``; the sandbox sends them as GitHub
documents them (its payloads validate against GitHub's webhooks description)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from connectors import github
from connectors.testing import RecordingServer, Reply, wait_until

KEY = "s3cret-signing-key-0001"
BODY = json.dumps({"action": "opened", "issue": {"number": 5}}).encode()


def signed(body: bytes = BODY, key: str = KEY, **extra: str) -> dict[str, str]:
    signature = github.connector.webhooks.signature.sign(key, body)
    return {"X-Hub-Signature-256": signature, "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", **extra}  # fmt: skip


def test_a_delivery_signed_with_the_key_verifies(gh):
    assert gh.verify_delivery(signed(), BODY, KEY).ok


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing X-Hub-Signature-256 header"),
        ({"X-Hub-Signature-256": "sha1=abc"}, "malformed X-Hub-Signature-256 header"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "the signature does not match the body"),
    ],
)
def test_an_unsigned_or_forged_delivery_is_refused_with_a_reason(gh, headers, reason):
    verification = gh.verify_delivery(headers, BODY, KEY)

    assert not verification.ok
    assert verification.reason.startswith(reason)


def test_a_body_changed_after_signing_is_refused(gh):
    assert not gh.verify_delivery(signed(), BODY.replace(b"5", b"6"), KEY).ok


def test_the_event_name_is_the_event_header_and_the_bodys_action(gh):
    assert gh.event_name(BODY, signed()) == "issues.opened"
    assert gh.event_name(b"{}", {"X-GitHub-Event": "ping"}) == "ping"
    assert gh.event_name(BODY, {}) == ""


def test_the_dedupe_key_is_githubs_delivery_id(gh):
    assert gh.dedupe_key(BODY, signed()) == "github:72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert gh.dedupe_key(BODY, {}).startswith("github-body:")


def test_the_portal_keeps_the_headers_that_name_and_identify_a_delivery(gh):
    assert set(gh.webhooks.kept_headers) == {
        "x-hub-signature-256", "x-github-event", "x-github-delivery", "x-github-hook-id",
    }  # fmt: skip


def test_the_events_are_githubs_own_and_subscribe_their_topic(gh):
    assert {"issues.opened", "issue_comment.created", "pull_request.opened"} <= set(
        gh.webhook_events
    )
    assert gh.webhooks.subscription_events(["issues.opened", "issues.closed"]) == ["issues"]


@pytest.fixture
def receiver():
    with RecordingServer(lambda request: Reply(200, {})) as server:
        yield server


def test_the_sandbox_pings_a_new_hook_then_delivers_issues_signed(
    gh, owner, runtime, github_sandbox, receiver
):
    gh.create_subscription(
        owner, url=receiver.url + "/hook", events=["issues.opened"], signing_key=KEY,
        runtime=runtime, owner="octocat", repo="hello-world",
    )  # fmt: skip
    new_issue = [("owner", "octocat"), ("repo", "hello-world"), ("title", "New")]
    gh.run_action("create_issue", owner, runtime=runtime, filters=new_issue)
    assert wait_until(lambda: len(receiver.requests) == 2)

    ping, opened = receiver.requests
    assert gh.event_name(ping.body, ping.headers) == "ping"
    assert gh.event_name(opened.body, opened.headers) == "issues.opened"
    assert opened.json()["issue"]["title"] == "New"
    for delivery in (ping, opened):
        assert gh.verify_delivery(delivery.headers, delivery.body, KEY).ok
        assert gh.dedupe_key(delivery.body, delivery.headers).startswith("github:")
        schema = github.hooks.webhook_schema(gh.event_name(delivery.body, delivery.headers))
        assert list(Draft202012Validator(schema).iter_errors(delivery.json())) == []


def test_a_failed_delivery_is_retried_with_the_same_delivery_id(gh, owner, runtime, github_sandbox):
    answers = iter([503, 503, 200, 200, 200])
    with RecordingServer(lambda request: Reply(next(answers), {})) as flaky:
        gh.create_subscription(
            owner, url=flaky.url, events=["issues.opened"], signing_key=KEY, runtime=runtime,
            owner="octocat", repo="hello-world",
        )  # fmt: skip
        github_sandbox.wait_for_deliveries()

    ids = {r.header("X-GitHub-Delivery") for r in flaky.requests}
    assert len(flaky.requests) == 3
    assert len(ids) == 1
    assert github_sandbox.deliveries[0].state == "delivered"
