"""The sandbox kit as other processes use it: ``python -m connectors.sandbox APP`` (what
``make sandbox APP=github`` runs) serves any connector's sandbox, and its admin API drives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from connectors.github.sandbox import OWNER_TOKEN

pytestmark = pytest.mark.usefixtures("no_internet")

ROOT = Path(__file__).resolve().parents[2]


def serve(app: str) -> tuple[subprocess.Popen, str, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.sandbox", app, "--port", "0"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    banner = [process.stdout.readline()]
    while banner[-1] and not banner[-1].startswith("Ctrl-C stops."):
        banner.append(process.stdout.readline())
    return process, banner[0].strip().rsplit(" ", 1)[-1], banner


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    _, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors


def test_make_sandbox_app_github_serves_githubs_api_and_its_admin_api():
    process, url, banner = serve("github")
    try:
        assert banner[0].startswith("GitHub sandbox listening on http://127.0.0.1:")
        assert "GITHUB_API_BASE_URL" in banner[1]
        me = requests.get(f"{url}/user", headers={"Authorization": f"Bearer {OWNER_TOKEN}"},
                          timeout=5)  # fmt: skip
        fired = requests.post(f"{url}/_sandbox/fire", json={"event": "issues.opened",
                              "title": "From the admin API"}, timeout=5)  # fmt: skip
        issues = requests.get(
            f"{url}/repos/octocat/hello-world/issues",
            headers={"Authorization": f"Bearer {OWNER_TOKEN}"},
            timeout=5,
        )
    finally:
        stop(process)
    assert me.json()["login"] == "octocat"
    assert fired.status_code == 201
    assert "From the admin API" in [issue["title"] for issue in issues.json()]
    assert any(OWNER_TOKEN in line for line in banner)


def test_every_connector_with_a_sandbox_is_served_by_name():
    for app in ("calendly", "figma"):
        process, url, _ = serve(app)
        try:
            assert requests.get(f"{url}/_sandbox/", timeout=5).json()["url"] == url
        finally:
            stop(process)


def test_an_application_without_a_sandbox_is_a_usage_error():
    completed = subprocess.run(
        [sys.executable, "-m", "connectors.sandbox", "rest"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert completed.returncode == 2
    assert "no sandbox for 'rest'" in completed.stderr
