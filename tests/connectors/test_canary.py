"""A canary token must never surface: not in errors, tracebacks, logs, summaries or results.

Each path a request can take is exercised with a distinctive token (success, 401, 500,
timeout, and a server that echoes the token back), and everything the library produces on
the way is searched for it.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback

import pytest

from connectors import Credentials, Runtime, TTLCache, Unlimited, get_connector
from connectors.calendly.sandbox import seed
from connectors.errors import ConnectorError
from connectors.testing import RecordingServer, Reply

CANARY = "CANARY-tok-7f3a9c1e-5b2d-4e8f-a6c0-d41b93e2f7aa"
BASIC_USER, BASIC_PASSWORD = "forwarder", "CANARY-pw-0b9e1d7c"


@pytest.fixture
def calendly():
    return get_connector("calendly")


@pytest.fixture
def credentials():
    return Credentials(type="rest", secrets={"personal_access_token": CANARY}, key="c:canary")


@pytest.fixture
def seen(caplog):
    """Everything produced during the test, to be searched for the canary."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def record(*things: object) -> None:
        for thing in things:
            if isinstance(thing, BaseException):
                texts.extend([str(thing), repr(thing), json.dumps(thing.as_dict())])
                texts.append("".join(traceback.format_exception(thing)))
                texts.extend(json.dumps(s.as_dict()) for s in getattr(thing, "requests", ()))
            else:
                texts.append(thing if isinstance(thing, str) else repr(thing))

    yield record
    texts.append(caplog.text)
    texts.extend(str(r.args) for r in caplog.records)
    encoded = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    for text in texts:
        assert CANARY not in text
        assert BASIC_PASSWORD not in text
        assert encoded not in text


def runtime_for(url: str, **options) -> Runtime:
    return Runtime(
        base_urls={"calendly": url},
        rate_limiter=Unlimited(),
        cache=TTLCache(),
        sleep=lambda seconds: None,
        **options,
    )


def test_the_canary_stays_hidden_on_success(calendly, credentials, calendly_sandbox, seen):
    calendly_sandbox.add_token(CANARY, seed.OWNER_USER_UUID)
    runtime = runtime_for(calendly_sandbox.url)

    account = calendly.validate(credentials, runtime=runtime)
    result = calendly.run_action(
        "scheduled_events", credentials, filters=[("user", "~{GetUserUrl}~")], runtime=runtime
    )

    seen(account, result, json.dumps(result.as_dict()), credentials, credentials.secrets)
    assert result.items


def test_the_canary_stays_hidden_on_401(calendly, credentials, calendly_sandbox, seen):
    with pytest.raises(ConnectorError) as caught:
        calendly.validate(credentials, runtime=runtime_for(calendly_sandbox.url))

    seen(caught.value, credentials)
    assert caught.value.status == 401


def test_the_canary_stays_hidden_on_500(calendly, credentials, calendly_sandbox, seen):
    calendly_sandbox.add_token(CANARY, seed.OWNER_USER_UUID)
    calendly_sandbox.inject_fault("/users/me", "status", times=5, status=500)

    with pytest.raises(ConnectorError) as caught:
        calendly.validate(credentials, runtime=runtime_for(calendly_sandbox.url, max_retries=2))

    seen(caught.value)
    assert caught.value.attempts == 3


def test_the_canary_stays_hidden_on_timeout(calendly, credentials, calendly_sandbox, seen):
    calendly_sandbox.add_token(CANARY, seed.OWNER_USER_UUID)
    calendly_sandbox.inject_fault("/users/me", "stall", times=1, seconds=3)

    with pytest.raises(ConnectorError) as caught:
        calendly.validate(
            credentials, runtime=runtime_for(calendly_sandbox.url, read_timeout=0.3, max_retries=0)
        )

    seen(caught.value)
    assert "timed out" in str(caught.value)


def echo(status: int):
    """A server that repeats the Authorization header back in every field it can."""

    def respond(request):
        sent = request.header("Authorization") or ""
        return Reply(
            status,
            {
                "title": f"Rejected {sent}",
                "message": f"The token {sent} is not accepted",
                "details": [{"parameter": "Authorization", "message": sent}],
                "resource": {"echo": sent, "nested": [sent]},
            },
        )

    return respond


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422, 500])
def test_a_server_echoing_the_token_in_an_error_cannot_leak_it(calendly, credentials, seen, status):
    with RecordingServer(echo(status)) as server:
        with pytest.raises(ConnectorError) as caught:
            calendly.run_action(
                "users/me", credentials, runtime=runtime_for(server.url, max_retries=1)
            )

        assert server.requests[0].header("Authorization") == f"Bearer {CANARY}"
    seen(caught.value)
    if status not in (401,):
        assert "[redacted]" in str(caught.value)


def test_a_server_echoing_the_token_in_a_success_cannot_leak_it(calendly, credentials, seen):
    with RecordingServer(echo(200)) as server:
        result = calendly.run_action("users/me", credentials, runtime=runtime_for(server.url))

    seen(result, json.dumps(result.as_dict()))
    assert result.data["resource"]["echo"] == "Bearer [redacted]"


def test_basic_credentials_echoed_by_a_rest_destination_cannot_leak(seen):
    rest = get_connector("rest")
    with RecordingServer(echo(400)) as server:
        credentials = Credentials(
            type="rest",
            fields={"base_url": server.url, "auth_type": "basic", "username": BASIC_USER},
            secrets={"password": BASIC_PASSWORD},
            key="c:basic",
        )
        with pytest.raises(ConnectorError) as caught:
            rest.run_action(
                "post_json",
                credentials,
                document={"a": 1},
                runtime=Runtime(allowed_private_hosts={"127.0.0.1"}, rate_limiter=Unlimited()),
            )

    seen(caught.value, credentials)
    assert "[redacted]" in str(caught.value)


def test_a_token_with_a_line_break_is_refused_without_quoting_it(calendly, seen):
    broken = Credentials(type="rest", secrets={"personal_access_token": f"{CANARY}\r\nX-Evil: 1"})

    with pytest.raises(ConnectorError) as caught:
        calendly.validate(broken, runtime=runtime_for("http://127.0.0.1:9"))

    seen(caught.value)
    assert "control characters" in str(caught.value)
