"""``manage.py runall`` (what ``make run ADDR=...`` starts): the web server, a worker, the
scheduler and the relay, with URLs that point at the address they really listen on."""

from __future__ import annotations

import os
import signal
import sys

import pytest
import requests

from portal.api.services import create_token
from portal.ops.management.commands.runall import base_url_for
from portal.ops.supervisor import Supervisor
from tests.factories import make_credential, make_processflow
from tests.processes import (
    ROOT,
    answers_http,
    child_env,
    descendants,
    purge_queues,
    start,
    wait_for,
)
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
        yield url, process
    finally:
        process.stop()


def test_processflow_urls_point_at_the_port_runall_listens_on(runall, owner, acme):
    runall, _ = runall
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


def _worker_of(runall_pid: int) -> int | None:
    for child in descendants(runall_pid):
        command = child["cmdline"]
        if child["ppid"] == runall_pid and "celery" in command and " worker" in command:
            return child["pid"]
    return None


def test_runall_starts_a_killed_worker_again_and_says_so(runall):
    url, process = runall
    first = wait_for(lambda: _worker_of(process.pid), timeout=120)

    os.kill(first, signal.SIGKILL)

    wait_for(lambda: _worker_of(process.pid) not in (None, first), timeout=120,
             message=f"no new worker:\n{process.output()}")  # fmt: skip
    log = process.output()
    assert f"worker exited with code -{signal.SIGKILL}; restarting it in 1 s." in log
    assert "worker: starting again (restart 1)." in log
    assert requests.get(f"{url}/healthz", timeout=60).status_code == 200


# --- The supervisor itself, with real children ----------------------------------------------


class Clock:
    """Time that moves only when the test says so, to read the backoff exactly."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def supervise():
    started = []

    def make(commands: dict[str, list[str]], **options) -> tuple[Supervisor, list[str]]:
        log: list[str] = []
        supervisor = Supervisor(commands, cwd=ROOT, env=child_env(), log=log.append, **options)
        started.append(supervisor)
        supervisor.start()
        return supervisor, log

    yield make
    for supervisor in started:
        supervisor.stop(grace=5)


def test_a_child_that_keeps_exiting_is_restarted_with_a_doubling_backoff(supervise):
    clock = Clock()
    supervisor, log = supervise(
        {"crasher": [sys.executable, "-c", "raise SystemExit(3)"]}, max_delay=4, clock=clock
    )
    child = supervisor.children["crasher"]
    for _ in range(4):
        child.process.wait(timeout=60)
        supervisor.check()  # noticed: restart scheduled
        clock.now = child.due
        supervisor.check()  # due: started again

    assert [line for line in log if "exited" in line] == [
        f"crasher exited with code 3; restarting it in {delay} s." for delay in (1, 2, 4, 4)
    ]
    assert child.restarts == 4


def test_a_child_that_ran_a_while_before_exiting_starts_again_from_the_shortest_delay(supervise):
    clock = Clock()
    supervisor, log = supervise(
        {"crasher": [sys.executable, "-c", "raise SystemExit(3)"]}, stable_after=60, clock=clock
    )
    child = supervisor.children["crasher"]
    for _ in range(2):
        child.process.wait(timeout=60)
        supervisor.check()
        clock.now = child.due
        supervisor.check()
    clock.now += 61  # the third process ran for a minute

    child.process.wait(timeout=60)
    supervisor.check()

    assert log[-1] == "crasher exited with code 3; restarting it in 1 s."


def test_stopping_the_supervisor_ends_every_child(supervise):
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    supervisor, _ = supervise({"a": sleeper, "b": sleeper})

    supervisor.stop(grace=10)

    assert all(c.process.poll() is not None for c in supervisor.children.values())
