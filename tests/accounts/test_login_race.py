"""The lockout holds under parallel attempts: real gunicorn processes (two workers, several
threads each) on the test database get a burst of wrong passwords for one account at once,
and no more than the limit of them is ever checked against the password."""

from __future__ import annotations

import re
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import global_settings
from django.contrib.auth import get_user_model

from portal.accounts import throttling
from tests.conftest import PASSWORD
from tests.processes import ROOT, Process, child_env
from tests.processflows.reliability.support import free_port

LIMIT = 5
BURST = 24


@pytest.fixture
def web(transactional_db):
    """gunicorn with 2 workers x 4 threads on the test database; its base URL."""
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}",
        "--workers", "2", "--threads", "4", "--timeout", "120", "--graceful-timeout", "2",
    ]  # fmt: skip
    env = child_env(PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT=str(LIMIT))
    process = Process("gunicorn-login", args, env, ROOT / "var" / "test-logs")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{process.output()}")
            try:
                # Not yet listening, or too busy to answer in time: both mean "not yet".
                if requests.get(f"{url}/accounts/login/", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 120 s:\n{process.output()}")
            time.sleep(0.2)
        yield url
    finally:
        process.stop()


def login_page(url: str) -> tuple[str, str]:
    """The CSRF cookie and form token a browser would get from the login page."""
    page = requests.get(f"{url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return page.cookies["csrftoken"], token


def post_login(url: str, cookie: str, token: str, email: str, password: str) -> int:
    response = requests.post(
        f"{url}/accounts/login/",
        data={"csrfmiddlewaretoken": token, "username": email, "password": password},
        cookies={"csrftoken": cookie},
        allow_redirects=False,
        timeout=120,
    )
    return response.status_code


@pytest.mark.services
def test_a_parallel_burst_of_wrong_passwords_gets_no_more_than_the_limit_checked(web, settings):
    # The child hashes with Django's default (slow) hashers: a wide window for a race.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    email = f"race-{uuid.uuid4().hex[:8]}@acme.test"
    get_user_model().objects.create_user(email=email, password=PASSWORD)
    cookie, token = login_page(web)

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        statuses = list(
            pool.map(
                lambda n: post_login(web, cookie, token, email, f"wrong password {n}"),
                range(BURST),
            )
        )

    checked = [status for status in statuses if status != 429]
    assert set(checked) <= {200}, statuses  # 200: checked and refused; never a 5xx
    assert len(checked) <= LIMIT, statuses
    assert post_login(web, cookie, token, email, PASSWORD) == 429


def test_no_more_reservations_than_the_limit_are_granted_in_a_window(db):
    waits = [throttling.reserve("account:x", limit=3, window=60) for _ in range(10)]
    assert waits[:3] == [0, 0, 0]
    assert all(0 < wait <= 60 for wait in waits[3:])
