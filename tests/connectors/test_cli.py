"""``python -m connectors`` end to end: a real process against the sandbox, token in the env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.calendly.sandbox import seed
from tests.processes import run

REPO = Path(__file__).resolve().parents[2]
INVALID_TOKEN_MESSAGE = (
    "Calendly rejected the Personal Access Token (401). Check the token and validate again."
)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("CALENDLY_", "GITHUB_", "REST_"))
    }
    environment.update(env or {})
    return run(
        [sys.executable, "-m", "connectors", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def token_env():
    return {"CALENDLY_PERSONAL_ACCESS_TOKEN": seed.OWNER_TOKEN}


def test_list_names_every_connector():
    completed = cli("list")

    assert completed.returncode == 0, completed.stderr
    listed = {c["name"]: c for c in json.loads(completed.stdout)}
    assert {"calendly", "github", "rest"} <= set(listed)  # and any other installed one
    assert "scheduled_events" in listed["calendly"]["actions"]


def test_actions_describes_calendlys_actions():
    completed = cli("calendly", "actions")

    actions = {a["name"]: a for a in json.loads(completed.stdout)}
    assert actions["users/me"]["method"] == "GET"
    assert "count" in actions["scheduled_events"]["keys"]


def test_validate_reads_the_token_from_the_environment(calendly_sandbox, token_env):
    completed = cli("calendly", "validate", "--base-url", calendly_sandbox.url, env=token_env)

    assert completed.returncode == 0, completed.stderr
    account = json.loads(completed.stdout)
    assert account["uri"] == f"{calendly_sandbox.url}/users/{seed.OWNER_USER_UUID}"
    assert seed.OWNER_TOKEN not in completed.stdout + completed.stderr


def test_run_takes_filters_and_a_limit(calendly_sandbox, token_env):
    completed = cli(
        "calendly", "run", "scheduled_events",
        "--filter", "count=10",
        "--filter", "status=active",
        "--limit", "12",
        "--base-url", calendly_sandbox.url,
        env=token_env,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert len(result["items"]) == 12
    assert {item["status"] for item in result["items"]} == {"active"}
    assert result["pages"] == 2
    assert result["truncated"] is True


def test_token_env_picks_another_variable(calendly_sandbox):
    completed = cli(
        "calendly", "validate", "--base-url", calendly_sandbox.url, "--token-env", "MY_CALENDLY",
        env={"MY_CALENDLY": seed.MEMBER_TOKEN},
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["name"] == "Mia Member"


def test_a_token_flag_works_but_warns_about_shell_history(calendly_sandbox):
    completed = cli(
        "calendly", "validate", "--base-url", calendly_sandbox.url, "--token", seed.OWNER_TOKEN
    )

    assert completed.returncode == 0
    assert "shell history" in completed.stderr
    assert seed.OWNER_TOKEN not in completed.stderr


def test_a_refused_token_is_a_json_error_with_a_non_zero_status(calendly_sandbox):
    completed = cli(
        "calendly", "validate", "--base-url", calendly_sandbox.url,
        env={"CALENDLY_PERSONAL_ACCESS_TOKEN": "not-a-valid-token-value"},
    )  # fmt: skip

    assert completed.returncode == 1
    assert completed.stdout == ""
    error = json.loads(completed.stderr)
    assert error == {
        "error": "AuthenticationFailed",
        "message": INVALID_TOKEN_MESSAGE,
        "status": 401,
        "retryable": False,
        "title": "Unauthenticated",
        "api_message": "The access token is invalid",
        "details": [],
    }
    assert "not-a-valid-token-value" not in completed.stderr


def test_a_missing_token_says_which_field_is_missing(calendly_sandbox):
    completed = cli("calendly", "validate", "--base-url", calendly_sandbox.url)

    assert completed.returncode == 1
    assert "Personal Access Token" in json.loads(completed.stderr)["message"]


def test_a_bad_filter_is_reported_before_any_request(calendly_sandbox, token_env):
    completed = cli(
        "calendly", "run", "scheduled_events", "--filter", "colour=red",
        "--base-url", calendly_sandbox.url, env=token_env,
    )  # fmt: skip

    assert completed.returncode == 1
    error = json.loads(completed.stderr)
    assert error["error"] == "FilterError"
    assert error["key"] == "colour"
    assert calendly_sandbox.exchanges == []
