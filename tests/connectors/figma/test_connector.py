"""The Figma connector against its sandbox: the second application imported from its own
OpenAPI description (an API-key header, pages named in the body, passcode webhooks)."""

from __future__ import annotations

import json

import pytest

import connectors
from connectors import figma
from connectors.errors import PermissionDenied
from connectors.figma.sandbox import FILE_KEY, OWNER_TOKEN, TEAM_ID
from connectors.testing import RecordingServer, Reply, wait_until

PASSCODE = "passcode-of-the-portal-01"


@pytest.fixture
def fig():
    return connectors.get_connector("figma")


@pytest.fixture
def runtime(figma_sandbox):
    return connectors.Runtime(base_urls={"figma": figma_sandbox.url})


@pytest.fixture
def owner():
    return connectors.Credentials(type="rest", secrets={"token": OWNER_TOKEN}, key="fig:owner")


def problems(exchanges) -> list[str]:
    found = []
    for e in exchanges:
        request = json.loads(e.request_body) if e.request_body else None
        response = json.loads(e.response_body) if e.response_body else None
        found += figma.spec.problems(
            e.method, e.path, query=e.query, request_body=request, status=e.status,
            response_body=response,
        )  # fmt: skip
    return found


def test_the_token_goes_in_the_figma_header_and_validates(fig, owner, runtime, figma_sandbox):
    account = fig.validate(owner, runtime=runtime)

    assert (account.name, account.email) == ("Ada", "ada@example.com")
    assert figma_sandbox.exchanges[0].request_headers["X-Figma-Token"] == OWNER_TOKEN
    assert "Authorization" not in figma_sandbox.exchanges[0].request_headers
    assert problems(figma_sandbox.exchanges) == []


def test_a_refused_token_is_figmas_403(fig, runtime):
    bad = connectors.Credentials(type="rest", secrets={"token": "figd_nope"}, key="fig:bad")

    with pytest.raises(PermissionDenied, match="Invalid token"):
        fig.validate(bad, runtime=runtime)


def test_versions_follow_the_next_page_url_in_the_body(fig, owner, runtime, figma_sandbox):
    result = fig.run_action(
        "list_versions", owner, filters=[("file_key", FILE_KEY), ("page_size", "10")],
        runtime=runtime,
    )  # fmt: skip

    assert len(result.items) == 45
    assert result.pages == 5
    assert [v["label"] for v in result.items[:2]] == ["v45", "v44"]
    assert problems(figma_sandbox.exchanges) == []


def test_projects_files_and_comments(fig, owner, runtime, figma_sandbox):
    projects = fig.run_action(
        "list_projects", owner, filters=[("team_id", TEAM_ID)], runtime=runtime
    )
    posted = fig.run_action(
        "post_comment", owner, filters=[("file_key", FILE_KEY), ("message", "Nice!")],
        runtime=runtime,
    )  # fmt: skip
    listed = fig.run_action(
        "list_comments", owner, filters=[("file_key", FILE_KEY)], runtime=runtime
    )

    assert [p["name"] for p in projects.data["projects"]] == ["Web"]
    assert posted.data["message"] == "Nice!"
    assert [c["message"] for c in listed.data["comments"]] == ["Nice!"]
    assert problems(figma_sandbox.exchanges) == []


def test_a_webhook_takes_one_event_in_a_context_and_proves_itself_with_the_passcode(
    fig, owner, runtime, figma_sandbox
):
    with RecordingServer(lambda request: Reply(200, {})) as receiver:
        made = fig.create_subscription(
            owner, url=receiver.url, events=["FILE_UPDATE"], signing_key=PASSCODE,
            runtime=runtime, context_id=TEAM_ID,
        )  # fmt: skip
        figma_sandbox.fire("FILE_UPDATE")
        assert wait_until(lambda: len(receiver.requests) == 2)

    assert made.options == {"context": "team", "context_id": TEAM_ID}
    assert made.events == ("FILE_UPDATE",)
    names = sorted(fig.event_name(r.body, r.headers) for r in receiver.requests)
    assert names == ["FILE_UPDATE", "PING"]
    for delivery in receiver.requests:
        assert fig.verify_delivery(delivery.headers, delivery.body, PASSCODE).ok
        assert not fig.verify_delivery(delivery.headers, delivery.body, "another-passcode").ok
        stored = fig.webhooks.stored_body(delivery.body, delivery.json())
        assert PASSCODE not in stored.decode()
    assert problems(figma_sandbox.exchanges) == []


def test_a_webhook_is_deleted_by_its_id(fig, owner, runtime, figma_sandbox):
    made = fig.create_subscription(
        owner, url="http://127.0.0.1:9/", events=["FILE_COMMENT"], signing_key=PASSCODE,
        runtime=runtime, context="file", context_id=FILE_KEY,
    )  # fmt: skip

    fig.delete_subscription(owner, made.uri, runtime=runtime)

    assert fig.list_subscriptions(owner, runtime=runtime, context_id=FILE_KEY) == []
    assert problems(figma_sandbox.exchanges) == []


def test_a_subscription_with_two_events_is_refused_by_the_definition_checks():
    import flows

    class Catalog:
        def find(self, ref):
            return flows.CredentialInfo(ref, "design", "figma")

    definition = {
        "trigger": {"type": "webhook", "application": "figma", "credential": 1,
                    "events": ["FILE_UPDATE", "FILE_DELETE"], "options": {"context_id": "1"}},
        "steps": [{"name": "note", "type": "map",
                   "mapping": {"file": "{{ trigger.payload.file_key }}"}}],
    }  # fmt: skip

    with pytest.raises(flows.DefinitionError) as caught:
        flows.check(definition, credentials=Catalog())

    assert caught.value.where == "trigger.events"
    assert "at most 1 event" in caught.value.message
