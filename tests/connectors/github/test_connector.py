"""The GitHub connector against its sandbox: actions imported from GitHub's OpenAPI
description, Link-header pages, repository webhooks; every exchange conforms."""

from __future__ import annotations

import pytest

import connectors
from connectors.errors import AlreadyExists, AuthenticationFailed, InvalidResponse, NotFound
from connectors.testing import RecordingServer, Reply

from .conftest import problems

HELLO = [("owner", "octocat"), ("repo", "hello-world")]


def test_validation_reaches_the_tokens_user(gh, owner, runtime, github_sandbox):
    account = gh.validate(owner, runtime=runtime)

    assert account.name == "octocat"
    assert account.email == "octocat@example.com"
    assert account.uri == "https://github.com/octocat"
    assert github_sandbox.exchanges[0].path == "/user"
    assert problems(github_sandbox.exchanges) == []


def test_a_refused_token_is_an_authentication_error_with_githubs_message(gh, runtime):
    bad = connectors.Credentials(type="rest", secrets={"token": "ghp_revoked"}, key="gh:bad")

    with pytest.raises(AuthenticationFailed) as caught:
        gh.validate(bad, runtime=runtime)

    assert str(caught.value) == "GitHub rejected the token (401). Check it and validate again."


def test_list_repos_walks_every_page_of_the_link_header(gh, owner, runtime, github_sandbox):
    result = gh.run_action("list_repos", owner, filters=[("per_page", "10")], runtime=runtime)

    assert len(result.items) == 35
    assert result.pages == 4
    assert result.truncated is False
    assert [e.query.get("page") for e in github_sandbox.exchanges] == [None, ["2"], ["3"], ["4"]]
    assert problems(github_sandbox.exchanges) == []


def test_a_limit_stops_paging_and_says_more_exist(gh, owner, runtime, github_sandbox):
    result = gh.run_action("list_repos", owner, limit=12, runtime=runtime)

    assert len(result.items) == 12
    assert result.pages == 1  # the limit became the page size
    assert result.truncated is True
    assert github_sandbox.exchanges[0].query["per_page"] == ["12"]


def test_a_next_link_to_another_host_is_not_followed(gh, owner):
    elsewhere = '<https://evil.example/user/repos?page=2>; rel="next"'
    with RecordingServer(lambda r: Reply(200, [{"id": 1}], {"Link": elsewhere})) as server:
        runtime = connectors.Runtime(base_urls={"github": server.url})
        with pytest.raises(InvalidResponse, match="another host"):
            gh.run_action("list_repos", owner, runtime=runtime)

    assert len(server.requests) == 1


def test_issues_are_listed_read_opened_and_commented(gh, owner, runtime, github_sandbox):
    listed = gh.run_action("list_issues", owner, filters=HELLO, runtime=runtime)
    opened = gh.run_action(
        "create_issue", owner, runtime=runtime,
        filters=[*HELLO, ("title", "Broken link"), ("body", "On the home page")],
    )  # fmt: skip
    number = str(opened.data["number"])
    read = gh.run_action(
        "get_issue", owner, filters=[*HELLO, ("issue_number", number)], runtime=runtime
    )
    comment = gh.run_action(
        "comment_issue", owner, runtime=runtime,
        filters=[*HELLO, ("issue_number", number), ("body", "Thanks!")],
    )  # fmt: skip
    comments = gh.run_action(
        "list_issue_comments", owner, filters=[*HELLO, ("issue_number", number)], runtime=runtime
    )

    assert [i["title"] for i in listed.items] == ["Found a bug", "Add a dark mode", "Fix the bug"]
    assert opened.status == 201
    assert read.data["title"] == "Broken link"
    assert read.data["state"] == "open"
    assert comment.data["body"] == "Thanks!"
    assert [c["body"] for c in comments.items] == ["Thanks!"]
    assert problems(github_sandbox.exchanges) == []


def test_pull_requests_are_listed_and_read(gh, owner, runtime, github_sandbox):
    listed = gh.run_action("list_pulls", owner, filters=HELLO, runtime=runtime)
    read = gh.run_action("get_pull", owner, filters=[*HELLO, ("pull_number", "4")], runtime=runtime)

    assert [p["number"] for p in listed.items] == [4]
    assert read.data["title"] == "Fix the bug"
    assert problems(github_sandbox.exchanges) == []


def test_another_users_private_repository_is_not_found(gh, owner, runtime):
    with pytest.raises(NotFound):
        gh.run_action("get_repo", owner, filters=[("owner", "hubot"), ("repo", "hubot-scripts")],
                      runtime=runtime)  # fmt: skip


def test_an_issue_without_a_title_is_refused_before_any_request(gh, owner, runtime, github_sandbox):
    with pytest.raises(connectors.errors.FilterError, match="title"):
        gh.run_action("create_issue", owner, filters=HELLO, runtime=runtime)

    assert github_sandbox.exchanges == []


# --- Repository webhooks ----------------------------------------------------------------------


def subscribe(gh, owner, runtime, url="http://127.0.0.1:9/hooks/abc/"):
    return gh.create_subscription(
        owner, url=url, events=["issues.opened", "issues.closed"], signing_key="s3cret-key-123",
        runtime=runtime, owner="octocat", repo="hello-world",
    )  # fmt: skip


def test_a_subscription_is_a_repository_webhook_on_the_events_topics(
    gh, owner, runtime, github_sandbox
):
    created = subscribe(gh, owner, runtime)
    [hook] = github_sandbox.hooks["octocat/hello-world"]

    assert created.uri == f"{github_sandbox.url}/repos/octocat/hello-world/hooks/{hook['id']}"
    assert created.callback_url == "http://127.0.0.1:9/hooks/abc/"
    assert created.events == ("issues",)
    assert created.active
    assert created.options == {"owner": "octocat", "repo": "hello-world"}
    assert hook["config"]["content_type"] == "json"
    assert hook["config"]["secret"] == "********"
    assert github_sandbox.secrets[hook["id"]] == "s3cret-key-123"
    assert problems(github_sandbox.exchanges) == []


def test_subscriptions_are_listed_read_and_deleted_by_uri(gh, owner, runtime, github_sandbox):
    created = subscribe(gh, owner, runtime)

    listed = gh.list_subscriptions(owner, runtime=runtime, owner="octocat", repo="hello-world")
    read = gh.get_subscription(owner, created.uri, runtime=runtime)
    gh.delete_subscription(owner, created.uri, runtime=runtime)

    assert [s.uri for s in listed] == [created.uri]
    assert read.callback_url == created.callback_url
    assert github_sandbox.hooks["octocat/hello-world"] == []
    with pytest.raises(NotFound):
        gh.delete_subscription(owner, created.uri, runtime=runtime)


def test_a_second_hook_for_the_same_url_already_exists(gh, owner, runtime):
    subscribe(gh, owner, runtime)

    with pytest.raises(AlreadyExists, match="Hook already exists"):
        subscribe(gh, owner, runtime)


def test_subscribing_needs_owner_and_repo(gh, owner, runtime, github_sandbox):
    with pytest.raises(connectors.errors.FilterError) as caught:
        gh.create_subscription(owner, url="http://127.0.0.1:9/", events=["issues.opened"],
                               runtime=runtime, owner="octocat")  # fmt: skip

    assert str(caught.value) == "Give the Repository (repo) to subscribe to."
    assert github_sandbox.exchanges == []


def test_the_signing_key_never_shows_in_request_summaries(gh, owner, runtime):
    result = gh.run_action(
        "create_webhook", owner, runtime=runtime,
        filters=[*HELLO, ("config.url", "http://127.0.0.1:9/x"), ("config.secret", "abc-secret-1")],
        secrets=["abc-secret-1"],
    )  # fmt: skip

    assert "abc-secret-1" not in str(result.as_dict())
