"""``make demo`` (``scripts/demo.py``): the seed's whole flow walked in a real browser on
what it prints, against the Calendly sandbox it starts; Ctrl-C then stops everything.

Log in, Manage > App, Calendly, add a credential with the printed token, Validate, Save;
create a triggered processflow and deploy it; the sandbox sends a booking; the run succeeds.
"""

from __future__ import annotations

import os
import re
import signal
import sys

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import TIMEOUT_MS
from tests.processes import answers_http, group_members, start, wait_for
from tests.processflows.reliability.support import free_port

pytestmark = pytest.mark.browser

BANNER = re.compile(
    r"Portal +(?P<portal>http://\S+)/\n.*Password +(?P<password>\S+)\n"
    r".*Calendly sandbox (?P<sandbox>http://\S+) .*Token to paste +(?P<token>\S+)\n",
    re.DOTALL,
)


@pytest.fixture
def demo(tmp_path):
    """``scripts/demo.py`` on free ports and its own folder; yields (process, banner)."""
    port = free_port()
    args = [
        sys.executable, "scripts/demo.py", "--addr", f"127.0.0.1:{port}",
        "--sandbox-port", "0", "--var-dir", str(tmp_path / "demo"),
    ]  # fmt: skip
    portal = answers_http(f"http://127.0.0.1:{port}/healthz")

    def serving(process) -> bool:
        output = process.output()
        started = all(line in output for line in ("Ctrl-C stops everything.", "ready.", "relay"))
        return started and portal(process)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    process = start("demo", args, env=env, ready=serving, what="start the demo")
    try:
        yield process, BANNER.search(process.output()).groupdict()
    finally:
        process.stop()


def test_the_demo_walks_the_seeds_flow_and_stops_everything_on_ctrl_c(demo, chromium):
    process, banner = demo
    portal, sandbox = banner["portal"], banner["sandbox"]
    context = chromium.new_context(base_url=portal, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    page.goto("/accounts/login/")
    page.get_by_label("E-mail").fill("admin@example.com")
    page.get_by_label("Password").fill(banner["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/o/demo/"))

    page.locator("#menu-manage > summary").click()
    page.locator("#nav-manage-app").click()
    page.locator("#app-calendly > summary").click()
    page.locator("#credential-calendly > summary").click()
    rest = page.locator("#node-calendly-rest")
    rest.locator("> summary").click()
    rest.get_by_role("link", name="Add New Credential").click()
    form = page.locator("#form-calendly-rest form.credential-form")
    form.get_by_label("Credential name").fill("Demo Calendly")
    form.get_by_label("Personal Access Token").fill(banner["token"])
    form.get_by_role("button", name="Validate").click()
    expect(form.locator(".validation-result")).to_contain_text(
        "Connected to Calendly as Olivia Owner"
    )
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Connection Saved Successfully!")

    page.goto("/o/demo/processflows/new/")
    page.get_by_label("Name", exact=True).fill("Bookings")
    page.locator("#t-credential").select_option(label="Demo Calendly")
    page.get_by_label("invitee.created").check()
    page.get_by_role("button", name="+ Map step").click()
    page.locator("#step-0-name").fill("document")
    page.locator("#step-0-mkey-0").fill("email")
    page.locator("#step-0-mval-0").fill("{{ trigger.payload.email }}")
    page.get_by_role("button", name="Save processflow").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bookings")
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Deployed version 1")

    def subscriptions():
        answer = requests.get(f"{sandbox}/_sandbox/subscriptions", timeout=30)
        return answer.json()["collection"]

    [subscription] = wait_for(subscriptions, message="deploying subscribed nothing")
    assert re.fullmatch(rf"{portal}/hooks/[\w-]+/", subscription["callback_url"])
    assert subscription["state"] == "active"
    fire = {"event": "invitee.created", "payload": {"email": "ada@example.com"}}
    requests.post(f"{sandbox}/_sandbox/fire", json=fire, timeout=30).raise_for_status()
    answer = requests.get(f"{sandbox}/_sandbox/deliveries", params={"wait": "60"}, timeout=120)
    [delivery] = answer.json()["collection"]
    assert delivery["state"] == "delivered"

    def run_succeeded() -> bool:
        page.goto("/o/demo/runs/")
        return "Succeeded" in page.locator("table.runs tbody").inner_text()

    wait_for(run_succeeded, interval=1, message=f"no run succeeded:\n{process.output()}")
    context.close()

    process.kill(signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    process.popen.wait(timeout=120)
    wait_for(lambda: group_members(process.pid) == [], message="a demo process outlived Ctrl-C")
    assert "Demo stopped." in process.output()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox}/_sandbox", timeout=10)
