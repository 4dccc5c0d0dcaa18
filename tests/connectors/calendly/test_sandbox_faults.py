"""Injected faults: each kind misbehaves as documented, then the sandbox behaves again."""

from __future__ import annotations

import threading

import pytest
import requests

from connectors.calendly.sandbox import CalendlySandbox, seed
from tests.processes import wait_for

pytestmark = pytest.mark.usefixtures("no_internet")


def test_a_status_fault_answers_that_status_with_a_calendly_style_body(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/users/me", "status", status=503, retry_after=7)

    faulted = owner.get("/users/me")
    after = owner.get("/users/me")

    assert faulted.status_code == 503
    assert faulted.json()["title"] == "Service Unavailable"
    assert faulted.headers["Retry-After"] == "7"
    assert after.status_code == 200
    first, second = calendly_sandbox.exchanges
    assert (first.faulted, first.fault_kind, first.status) == (True, "status", 503)
    assert not second.faulted


def test_a_fault_affects_the_next_times_requests_under_its_prefix_only(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/scheduled_events", "status", times=2, status=500)

    statuses = [
        owner.get("/users/me").status_code,
        owner.get(f"/scheduled_events/{seed.MULTI_INVITEE_EVENT_UUID}/invitees").status_code,
        owner.get(f"/scheduled_events/{seed.MULTI_INVITEE_EVENT_UUID}").status_code,
        owner.get(f"/scheduled_events/{seed.MULTI_INVITEE_EVENT_UUID}").status_code,
    ]

    assert statuses == [200, 500, 500, 200]


def test_a_fault_can_be_limited_to_one_method(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/webhook_subscriptions", "status", method="POST", status=502)

    listed = owner.get(
        "/webhook_subscriptions",
        organization=f"{calendly_sandbox.url}/organizations/{seed.ORGANIZATION_UUID}",
        scope="organization",
    )
    created = owner.post("/webhook_subscriptions", json={})

    assert listed.status_code == 200
    assert created.status_code == 502


def test_a_rate_limit_fault_answers_429_with_headers(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/users", "rate_limit", reset=12)

    response = owner.get("/users/me")

    assert response.status_code == 429
    assert response.headers["X-RateLimit-Limit"] == "500"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"] == "12"
    assert response.headers["Retry-After"] == "12"
    assert response.json()["title"] == "Too Many Requests"


def test_a_stall_trips_the_clients_read_timeout_without_blocking_others(owner):
    # A stall far longer than the other request's patience: were the stalled request to
    # block the server, the other one could not be answered in time.
    with CalendlySandbox() as sandbox:
        sandbox.inject_fault("/scheduled_events", "stall", seconds=600)

        with pytest.raises(requests.exceptions.ReadTimeout):
            owner.session.get(f"{sandbox.url}/scheduled_events/X", timeout=(30, 0.2))
        other = requests.get(
            f"{sandbox.url}/users/me",
            headers={"Authorization": f"Bearer {seed.OWNER_TOKEN}"},
            timeout=60,
        )

        assert other.status_code == 200


def test_stopping_cuts_a_stall_short():
    sandbox = CalendlySandbox().start()
    sandbox.inject_fault("/users/me", "stall", seconds=600)
    outcome = []
    caller = threading.Thread(
        target=lambda: outcome.append(
            requests.get(
                f"{sandbox.url}/users/me",
                headers={"Authorization": f"Bearer {seed.OWNER_TOKEN}"},
                timeout=(30, 300),
            ).status_code
        ),
        daemon=True,
    )
    caller.start()
    # The request is stalled once it has taken the fault (white box: no public view of it).
    wait_for(lambda: not sandbox._store.faults, message="the request never reached the stall")

    sandbox.stop()
    caller.join(120)  # far less than the stall or the caller's own read timeout

    assert not caller.is_alive()
    assert outcome == [200]  # the stalled request was then handled normally


def test_a_non_json_fault_answers_html(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/users/me", "non_json")

    response = owner.get("/users/me")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_a_truncated_fault_breaks_off_the_body(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/scheduled_events", "truncated")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        owner.get("/scheduled_events", user=f"{calendly_sandbox.url}/users/{seed.OWNER_USER_UUID}")

    [exchange] = calendly_sandbox.exchanges
    assert exchange.fault_kind == "truncated"
    assert len(exchange.response_body) < int(exchange.header("Content-Length"))
    assert owner.get("/users/me").status_code == 200  # a new connection works again


def test_a_redirect_fault_points_elsewhere(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/users/me", "redirect", location="http://127.0.0.2:9/users/me")

    response = owner.session.get(
        f"{calendly_sandbox.url}/users/me", allow_redirects=False, timeout=5
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "http://127.0.0.2:9/users/me"


def test_a_disconnect_fault_closes_without_an_answer(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/users/me", "disconnect")

    with pytest.raises(requests.exceptions.ConnectionError):
        owner.get("/users/me")

    assert owner.get("/users/me").status_code == 200


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("/users", "explode"), {}, "unknown fault kind"),
        (("/users", "status"), {"code": 500}, "takes no option"),
        (("/users", "redirect"), {}, "needs location"),
        (("users", "status"), {}, "must start with '/'"),
        (("/users", "status"), {"times": 0}, "positive integer"),
    ],
)
def test_mistaken_faults_are_refused_when_injected(calendly_sandbox, args, options, message):
    with pytest.raises(ValueError, match=message):
        calendly_sandbox.inject_fault(*args, **options)


def test_reset_clears_pending_faults(calendly_sandbox, owner):
    calendly_sandbox.inject_fault("/users/me", "status", times=5)

    calendly_sandbox.reset()

    assert owner.get("/users/me").status_code == 200
