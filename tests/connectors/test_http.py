"""The HTTP layer every connector shares: retries, waits, timeouts, redirects, bad answers.

Calendly's sandbox injects the faults; a local recording server stands in where the sandbox
cannot (another host receiving a redirect). Waits are recorded through the Runtime's sleep
hook instead of slept, so the tests assert what was asked for, not how long it took.
"""

from __future__ import annotations

import socket

import pytest

from connectors import Credentials, Runtime, TTLCache, Unlimited, get_connector
from connectors.calendly.sandbox import seed
from connectors.errors import (
    ApiError,
    AuthenticationFailed,
    InvalidResponse,
    NotFound,
    RateLimited,
    Timeout,
    TransportError,
    UnsafeDestination,
)
from connectors.testing import RecordingServer, Reply

OWNER = Credentials(type="rest", secrets={"personal_access_token": seed.OWNER_TOKEN}, key="c:1")


@pytest.fixture
def calendly():
    return get_connector("calendly")


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def runtime(calendly_sandbox, waits):
    return Runtime(
        base_urls={"calendly": calendly_sandbox.url},
        rate_limiter=Unlimited(),
        cache=TTLCache(),
        max_retries=3,
        backoff_base=0.5,
        backoff_cap=4.0,
        sleep=waits.append,
    )


def me_calls(sandbox) -> int:
    return sum(1 for e in sandbox.exchanges if e.path == "/users/me")


# 429 and 5xx ----------------------------------------------------------------------------------
def test_429_is_retried_after_the_reset_the_server_names(
    calendly, runtime, calendly_sandbox, waits
):
    calendly_sandbox.inject_fault("/users/me", "rate_limit", times=2, reset=2)

    result = calendly.run_action("users/me", OWNER, runtime=runtime)

    assert result.status == 200
    assert waits == [2.0, 2.0]
    assert result.requests[-1].attempts == 3
    assert result.requests[-1].waited_s == 4.0


def test_retry_after_is_honoured_on_a_503(calendly, runtime, calendly_sandbox, waits):
    calendly_sandbox.inject_fault("/users/me", "status", times=1, status=503, retry_after=3)

    calendly.run_action("users/me", OWNER, runtime=runtime)

    assert waits == [3.0]


def test_5xx_is_retried_with_exponential_backoff_and_full_jitter(
    calendly, runtime, calendly_sandbox, waits
):
    calendly_sandbox.inject_fault("/users/me", "status", times=3, status=500)

    result = calendly.run_action("users/me", OWNER, runtime=runtime)

    assert result.requests[-1].attempts == 4
    assert len(waits) == 3
    for attempt, wait in enumerate(waits, start=1):
        assert 0 <= wait <= min(4.0, 0.5 * 2 ** (attempt - 1))


def test_5xx_gives_up_after_the_last_retry(calendly, runtime, calendly_sandbox, waits):
    calendly_sandbox.inject_fault("/users/me", "status", times=10, status=502)

    with pytest.raises(ApiError) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime.replace(max_retries=2))

    assert caught.value.status == 502
    assert caught.value.retryable is True
    assert caught.value.attempts == 3
    assert str(caught.value) == (
        "Calendly failed with 502 Bad Gateway: The server received an invalid response from an "
        "upstream server (after 3 attempts)."
    )
    assert me_calls(calendly_sandbox) == 3


def test_a_wait_longer_than_allowed_is_handed_back_instead_of_slept(
    calendly, runtime, calendly_sandbox, waits
):
    calendly_sandbox.inject_fault("/users/me", "rate_limit", times=1, reset=120)

    with pytest.raises(RateLimited) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime)

    assert caught.value.retry_after == 120
    assert caught.value.retryable is True
    assert "retry in 120 s" in str(caught.value)
    assert waits == []
    assert me_calls(calendly_sandbox) == 1


def test_a_429_that_persists_ends_as_rate_limited(calendly, runtime, calendly_sandbox, waits):
    calendly_sandbox.inject_fault("/users/me", "rate_limit", times=10, reset=1)

    with pytest.raises(RateLimited) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime)

    assert caught.value.attempts == 4
    assert waits == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("status", "error"), [(400, ApiError), (401, AuthenticationFailed), (404, NotFound)]
)
def test_other_client_errors_are_never_retried(
    calendly, runtime, calendly_sandbox, waits, status, error
):
    calendly_sandbox.inject_fault("/users/me", "status", times=5, status=status)

    with pytest.raises(error) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime)

    assert caught.value.status == status
    assert caught.value.retryable is False
    assert me_calls(calendly_sandbox) == 1
    assert waits == []


# Transport ------------------------------------------------------------------------------------
def test_a_stalled_answer_times_out_with_a_plain_message(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault("/users/me", "stall", times=2, seconds=5)

    with pytest.raises(Timeout) as caught:
        calendly.run_action(
            "users/me", OWNER, runtime=runtime.replace(read_timeout=0.5, max_retries=1)
        )

    assert str(caught.value) == "Could not reach Calendly: timed out after 0.5 s"
    assert caught.value.retryable is True
    assert isinstance(caught.value, TransportError)
    assert caught.value.attempts == 2


def test_a_timed_out_get_is_retried(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault("/users/me", "stall", times=1, seconds=5)

    result = calendly.run_action("users/me", OWNER, runtime=runtime.replace(read_timeout=0.3))

    assert result.requests[-1].attempts == 2


def test_a_dropped_connection_is_retried_for_a_get(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault("/users/me", "disconnect", times=1)

    result = calendly.run_action("users/me", OWNER, runtime=runtime)

    assert result.status == 200
    assert result.requests[-1].attempts == 2


def test_an_unreachable_api_is_reported_as_such(calendly, waits):
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    runtime = Runtime(
        base_urls={"calendly": f"http://127.0.0.1:{port}"},
        rate_limiter=Unlimited(),
        max_retries=2,
        sleep=waits.append,
    )

    with pytest.raises(TransportError) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime)

    assert str(caught.value) == "Could not reach Calendly: the connection was refused."
    assert caught.value.retryable is True
    assert caught.value.attempts == 3
    assert len(waits) == 2


# Answers that are not Calendly's --------------------------------------------------------------
def test_a_non_json_answer_is_an_invalid_response(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault("/users/me", "non_json", times=1)

    with pytest.raises(InvalidResponse) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime)

    assert str(caught.value) == (
        "Calendly sent an answer that is not JSON (text/html; charset=utf-8) with status 200."
    )


def test_an_html_502_from_a_proxy_is_retried_then_reported(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault("/users/me", "non_json", times=5, status=502)

    with pytest.raises(ApiError) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime.replace(max_retries=1))

    assert caught.value.status == 502
    assert str(caught.value) == "Calendly failed with 502 Bad Gateway (after 2 attempts)."


def test_a_truncated_answer_is_an_invalid_response(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault("/users/me", "truncated", times=5)

    with pytest.raises(InvalidResponse) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime.replace(max_retries=1))

    assert str(caught.value) == "Calendly's answer was cut off before it was complete."
    assert caught.value.attempts == 2


def test_a_truncated_answer_to_a_get_is_fetched_again(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault("/users/me", "truncated", times=1)

    result = calendly.run_action("users/me", OWNER, runtime=runtime)

    assert result.data["resource"]["name"] == "Olivia Owner"
    assert result.requests[-1].attempts == 2


def test_an_oversized_answer_is_refused(calendly, runtime):
    with pytest.raises(InvalidResponse) as caught:
        calendly.run_action("users/me", OWNER, runtime=runtime.replace(max_response_bytes=100))

    assert "too large" in str(caught.value)


# Redirects ------------------------------------------------------------------------------------
def test_a_redirect_to_another_host_is_refused_and_gets_no_token(
    calendly, runtime, calendly_sandbox
):
    with RecordingServer() as elsewhere:
        calendly_sandbox.inject_fault("/users/me", "redirect", location=f"{elsewhere.url}/steal")

        with pytest.raises(UnsafeDestination) as caught:
            calendly.run_action("users/me", OWNER, runtime=runtime)

        assert elsewhere.requests == []
    assert str(caught.value) == (
        "Calendly redirected the request to another host (127.0.0.1); it was not followed, "
        "so the credential was not sent there."
    )
    assert caught.value.status == 302


def test_a_redirect_within_the_api_is_followed(calendly, runtime, calendly_sandbox):
    calendly_sandbox.inject_fault(
        "/users/me", "redirect", status=307, location=f"{calendly_sandbox.url}/users/me"
    )

    result = calendly.run_action("users/me", OWNER, runtime=runtime)

    assert result.data["resource"]["slug"] == "olivia-owner"
    assert [e.status for e in calendly_sandbox.exchanges] == [307, 200]


# Rate budget hook -----------------------------------------------------------------------------
class RecordingLimiter:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def acquire(self, key: str) -> None:
        self.keys.append(key)


class ExhaustedBudget(Exception):
    """What a shared (e.g. Redis) limiter raises when its caller would wait too long."""

    wait = 42.0


class ExhaustedLimiter:
    def acquire(self, key: str) -> None:
        raise ExhaustedBudget("budget used up")


def test_the_rate_limiter_is_asked_before_every_request(calendly, runtime, calendly_sandbox):
    limiter = RecordingLimiter()
    calendly_sandbox.inject_fault("/scheduled_events", "status", times=1, status=503)

    result = calendly.run_action(
        "scheduled_events",
        OWNER,
        filters=[("user", "~{GetUserUrl}~")],
        runtime=runtime.replace(rate_limiter=limiter),
    )

    sent = len(calendly_sandbox.exchanges)
    assert sent == 1 + 1 + 3  # /users/me, a 503 and its retry, then two more pages
    assert limiter.keys == ["calendly:c:1"] * sent
    assert result.pages == 3


def test_a_shared_budget_that_is_used_up_stops_before_sending(calendly, runtime, calendly_sandbox):
    with pytest.raises(RateLimited) as caught:
        calendly.run_action(
            "users/me", OWNER, runtime=runtime.replace(rate_limiter=ExhaustedLimiter())
        )

    assert caught.value.retry_after == 42.0
    assert calendly_sandbox.exchanges == []


# Summaries ------------------------------------------------------------------------------------
def test_request_summaries_carry_no_query_string_and_mask_undeclared_values(
    calendly, runtime, calendly_sandbox
):
    result = calendly.run_action(
        "scheduled_events",
        OWNER,
        filters=[("user", "~{GetUserUrl}~"), ("count", 20)],
        runtime=runtime,
    )

    summary = result.requests[-1]
    assert summary.url == f"{calendly_sandbox.url}/scheduled_events"
    assert ("count", "20") in summary.query
    assert summary.as_dict()["status"] == 200
    assert summary.elapsed_ms > 0


def test_server_answers_inside_an_echo_are_kept_out_of_summaries():
    def respond(request):
        return Reply(200, {"ok": True})

    rest = get_connector("rest")
    with RecordingServer(respond) as server:
        credentials = Credentials(type="rest", fields={"base_url": server.url}, key="c:2")
        result = rest.run_action(
            "get_json",
            credentials,
            filters=[("path", "/search"), ("query.api_token", "abc-123-secretish")],
            runtime=Runtime(allowed_private_hosts={"127.0.0.1"}, rate_limiter=Unlimited()),
        )

    assert server.requests[0].query == {"api_token": ["abc-123-secretish"]}
    assert result.requests[0].query == (("api_token", "***"),)
    assert "abc-123" not in str(result.request)


# Connection reuse -----------------------------------------------------------------------------
def test_connections_are_reused_across_credential_uses_but_cookies_are_not():
    def respond(request):
        return Reply(
            200, {"ok": True}, {"Set-Cookie": f"session={request.header('Authorization')}"}
        )

    rest = get_connector("rest")
    runtime = Runtime(allowed_private_hosts={"127.0.0.1"}, rate_limiter=Unlimited())
    with RecordingServer(respond) as server:
        for token in ("tenant-a-token", "tenant-b-token"):
            credentials = Credentials(
                type="rest",
                fields={"base_url": server.url, "auth_type": "bearer"},
                secrets={"token": token},
            )
            rest.run_action("get_json", credentials, runtime=runtime)

    first, second = server.requests
    assert first.client_port == second.client_port
    assert second.header("Cookie") is None
    assert second.header("Authorization") == "Bearer tenant-b-token"


def test_without_reuse_every_credential_use_opens_its_own_connection(calendly, runtime):
    with RecordingServer(lambda request: Reply(200, {"resource": {}})) as server:
        fresh = runtime.replace(base_urls={"calendly": server.url}, reuse_connections=False)
        calendly.run_action("users/me", OWNER, runtime=fresh)
        calendly.run_action("users/me", OWNER, runtime=fresh)

    first, second = server.requests
    assert first.client_port != second.client_port
