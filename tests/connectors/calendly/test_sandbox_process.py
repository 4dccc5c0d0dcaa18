"""The sandbox as other processes use it: the CLI, the admin API, and no Django inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from connectors.calendly.sandbox import seed
from tests.processes import end, spawn

pytestmark = pytest.mark.usefixtures("no_internet")

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_python(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return spawn(
        "python",
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_the_cli_starts_prints_its_url_and_tokens_answers_and_stops_on_sigterm():
    process = run_python("-m", "connectors.calendly.sandbox", "--port", "0", "--rate-limit", "42")
    try:
        # Read the banner line by line (mixing readline with communicate would lose lines).
        banner = [process.stdout.readline()]
        while banner[-1] and not banner[-1].startswith("Ctrl-C stops."):
            banner.append(process.stdout.readline())
        assert banner[0].startswith("Calendly sandbox listening on http://127.0.0.1:")
        url = banner[0].strip().rsplit(" ", 1)[1]
        response = requests.get(
            f"{url}/users/me", headers={"Authorization": f"Bearer {seed.OWNER_TOKEN}"}, timeout=30
        )
        assert response.status_code == 200
        assert response.json()["resource"]["uri"] == f"{url}/users/{seed.OWNER_USER_UUID}"
        assert response.headers["X-RateLimit-Limit"] == "42"
    finally:
        process.terminate()  # the CLI's own SIGTERM handling is under test
        try:
            _, errors = process.communicate(timeout=60)
        finally:
            end(process)
    assert process.returncode == 0, errors
    assert any(seed.OWNER_TOKEN in line for line in banner)
    assert any(seed.FREE_PLAN_TOKEN in line for line in banner)


def test_the_sandbox_package_imports_no_django():
    process = run_python(
        "-c",
        "import sys, connectors.calendly.sandbox as s; "
        "s.CalendlySandbox().start().stop(); "
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))",
    )
    try:
        output, errors = process.communicate(timeout=120)
    finally:
        end(process)

    assert process.returncode == 0, errors
    assert output.strip() == "[]"


# Admin API -------------------------------------------------------------------------------------
def admin(sb, method: str, path: str, body=None, **params) -> requests.Response:
    return requests.request(
        method, f"{sb.url}/_sandbox{path}", json=body, params=params or None, timeout=10
    )


def test_admin_fire_delivers_and_deliveries_can_be_awaited_over_http(
    calendly_sandbox, owner, receiver_factory
):
    receiver = receiver_factory(200)
    owner.post(
        "/webhook_subscriptions",
        json={
            "url": receiver.url,
            "events": ["invitee.created"],
            "organization": f"{calendly_sandbox.url}/organizations/{seed.ORGANIZATION_UUID}",
            "scope": "organization",
        },
    )

    fired = admin(
        calendly_sandbox, "POST", "/fire", {"event": "invitee.created", "payload": {"name": "Zoe"}}
    )
    listed = admin(calendly_sandbox, "GET", "/deliveries", wait="5")

    assert fired.status_code == 201
    [delivery] = listed.json()["collection"]
    assert [delivery["id"]] == fired.json()["deliveries"]
    assert delivery["state"] == "delivered"
    assert json.loads(delivery["body"])["payload"]["name"] == "Zoe"
    assert json.loads(receiver.received[0].body)["payload"]["name"] == "Zoe"


def test_admin_tokens_rate_limit_and_reset_over_http(calendly_sandbox, client_for):
    added = admin(
        calendly_sandbox,
        "POST",
        "/tokens",
        {"token": "portal-token", "user_uuid": seed.ADMIN_USER_UUID},
    )
    portal = client_for("portal-token")
    assert added.status_code == 201
    assert portal.get("/users/me").json()["resource"]["uri"].endswith(seed.ADMIN_USER_UUID)

    admin(calendly_sandbox, "POST", "/rate_limit", {"per_minute": 1})
    assert portal.get("/users/me").status_code == 429

    admin(calendly_sandbox, "POST", "/tokens/revoke", {"token": "portal-token"})
    admin(calendly_sandbox, "POST", "/reset")
    assert portal.get("/users/me").status_code == 401
    assert client_for(seed.OWNER_TOKEN).get("/users/me").status_code == 200


def test_admin_faults_and_subscription_disabling_over_http(calendly_sandbox, owner):
    created = owner.post(
        "/webhook_subscriptions",
        json={
            "url": "https://example.com/hook",
            "events": ["invitee.created"],
            "organization": f"{calendly_sandbox.url}/organizations/{seed.ORGANIZATION_UUID}",
            "scope": "organization",
        },
    ).json()["resource"]
    uuid = created["uri"].rsplit("/", 1)[1]

    disabled = admin(calendly_sandbox, "POST", f"/webhook_subscriptions/{uuid}/disable")
    fault = admin(
        calendly_sandbox,
        "POST",
        "/faults",
        {"path_prefix": "/users", "kind": "status", "status": 502},
    )
    listed = admin(calendly_sandbox, "GET", "/subscriptions").json()["collection"]

    assert disabled.json()["resource"]["state"] == "disabled"
    assert owner.get(created["uri"]).json()["resource"]["state"] == "disabled"
    assert [s["state"] for s in listed] == ["disabled"]
    assert fault.status_code == 201
    assert owner.get("/users/me").status_code == 502


def test_admin_mistakes_get_400_or_404_and_admin_calls_are_not_recorded(calendly_sandbox):
    assert (
        admin(
            calendly_sandbox, "POST", "/faults", {"path_prefix": "/x", "kind": "nope"}
        ).status_code
        == 400
    )
    assert admin(calendly_sandbox, "POST", "/fire", {"event": "meeting.booked"}).status_code == 400
    assert admin(calendly_sandbox, "POST", "/webhook_subscriptions/NOPE/disable").status_code == 404
    assert admin(calendly_sandbox, "GET", "/nothing-here").status_code == 404
    info = admin(calendly_sandbox, "GET", "").json()
    assert info["url"] == calendly_sandbox.url
    assert info["tokens"][seed.OWNER_TOKEN] == seed.OWNER_USER_UUID
    assert calendly_sandbox.exchanges == []
