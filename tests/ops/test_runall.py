"""``manage.py runall`` (what ``make run ADDR=...`` starts): the web server, a worker, the
scheduler and the relay, with URLs that point at the address they really listen on."""

from __future__ import annotations

import sys

import pytest
import requests

from portal.api.services import create_token
from portal.ops.management.commands.runall import base_url_for
from tests.factories import make_credential, make_processflow
from tests.processes import answers_http, child_env, purge_queues, start
from tests.processflows.reliability.support import free_port

pytestmark = pytest.mark.services


@pytest.fixture
def runall(transactional_db):
    """``runall --addr 127.0.0.1:<a free port>`` on the test database, no PORTAL_BASE_URL set;
    yields its base URL."""
    purge_queues()
    port = free_port()
    env = child_env()
    env.pop("PORTAL_BASE_URL", None)
    args = [sys.executable, "manage.py", "runall", "--addr", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    process = start("runall", args, env=env, ready=answers_http(f"{url}/healthz"),
                    what="answer HTTP")  # fmt: skip
    try:
        yield url
    finally:
        process.stop()


def test_processflow_urls_point_at_the_port_runall_listens_on(runall, owner, acme):
    flow = make_processflow(acme, make_credential(acme))
    token = create_token(acme, user=owner, name="runall", expires_in_days=1).secret

    answer = requests.get(
        f"{runall}/api/v1/organizations/acme/processflows/{flow.pk}/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["processflow_url"] == f"{runall}/hooks/{flow.hook_id}/"


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("8701", "http://127.0.0.1:8701"),
        ("127.0.0.1:8701", "http://127.0.0.1:8701"),
        ("localhost:8701", "http://localhost:8701"),
        ("0.0.0.0:8701", "http://127.0.0.1:8701"),
        ("[::1]:8701", "http://[::1]:8701"),
    ],
)
def test_the_base_url_of_an_address_is_where_a_browser_on_this_machine_reaches_it(addr, url):
    assert base_url_for(addr) == url
