"""A real browser against a live portal: Debian's Chromium driven by Playwright's sync API.

``portal`` is the live server (pytest-django's, static files included) with the Calendly
connector pointed at the sandbox; ``page`` a fresh browser tab on it that records what the
browser itself reported (console errors, uncaught exceptions, Content Security Policy
violations) in ``page.problems``; ``shot(page, name)`` saves a screenshot under
``test-artifacts/browser/<test>/``. Without ``/usr/bin/chromium`` the tests are skipped,
unless ``PORTAL_REQUIRE_SERVICES=1`` (CI), where that is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.connectors.conftest import (  # noqa: F401
    calendly_sandbox,
    calendly_sandbox_session,
    github_sandbox,
    github_sandbox_session,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TIMEOUT_MS = 15_000  # generous: two cores shared with other test runs
expect.set_options(timeout=TIMEOUT_MS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)  # the page fixture screenshots failures
    return report


def _unavailable(reason: str) -> None:
    if os.environ.get("PORTAL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"PORTAL_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium per test module.

    Not per session: while Playwright's sync API is active its asyncio loop counts as running
    on this thread, which would change how every later test of the session behaves."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    # Playwright's sync API keeps an asyncio loop running on this thread, so Django would
    # refuse the test's own ORM calls as "async unsafe"; they are plain synchronous calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def portal(monkeypatch, live_server, settings, calendly_sandbox):  # noqa: F811
    """The live portal's base URL, its Calendly connector talking to the sandbox."""
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    # No CSRF_TRUSTED_ORIGINS entry is needed: the browser's Origin equals the live server's
    # host, which Django's CSRF check accepts over plain HTTP.
    return live_server.url


@pytest.fixture
def page(request, chromium, portal):
    """A fresh tab (own cookies) on the live portal; ``page.problems`` lists what the browser
    complained about."""
    context = chromium.new_context(base_url=portal, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.problems = []

    def console(message) -> None:
        url = message.location.get("url", "")
        # Chromium asks every site for /favicon.ico on its own; the portal declares none.
        if message.type == "error" and not url.endswith("/favicon.ico"):
            tab.problems.append(f"{message.text} ({url})" if url else message.text)

    tab.on("console", console)
    tab.on("pageerror", lambda error: tab.problems.append(f"uncaught: {error}"))
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        folder = ARTIFACTS / _folder_name(request.node)
        folder.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(folder / "failure.png"), full_page=True)
    context.close()


def _folder_name(node) -> str:
    return re.sub(r"[^\w.-]+", "_", node.name)


@pytest.fixture
def shot(request) -> Callable[[object, str], Path]:
    """``shot(page, name)`` saves a full-page screenshot, numbered in the order taken."""
    folder = ARTIFACTS / _folder_name(request.node)
    for old in folder.glob("*.png"):
        old.unlink()
    taken = []

    def take(tab, name: str) -> Path:
        taken.append(name)
        path = folder / f"{len(taken):02d}-{name}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take
