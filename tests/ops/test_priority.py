"""Background processes yield the CPU to intake: the worker, beat and the relay lower their
own priority at start (``PORTAL_WORKER_NICE``), the session's autogroup too when they lead
their session, never a session they share with the web server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, child_env, output_contains, run, start, start_worker

pytestmark = pytest.mark.services

AUTOGROUPS = Path("/proc/self/autogroup").exists()


def nice_of(pid: int) -> int:
    """The nice value of a process, from /proc (field 19 of its stat line)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def autogroup_nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.django_db(transaction=True)
def test_a_worker_and_its_pool_run_at_the_configured_nice_value():
    worker = start_worker(concurrency=2, extra_env={"PORTAL_WORKER_NICE": "7"})
    try:
        assert nice_of(worker.pid) == 7
        pool = children_of(worker.pid)
        assert pool
        assert all(nice_of(pid) == 7 for pid in pool)
        if AUTOGROUPS:  # the worker leads its session (as under a supervisor): its autogroup
            assert autogroup_nice_of(worker.pid) == 7
    finally:
        worker.stop()


@pytest.mark.django_db(transaction=True)
def test_the_relay_runs_at_the_configured_nice_value():
    relay = start(
        "relay", [sys.executable, "manage.py", "relay_outbox"],
        env=child_env(PORTAL_WORKER_NICE="5"), ready=output_contains("relay running"),
    )  # fmt: skip
    try:
        assert nice_of(relay.pid) == 5
    finally:
        relay.stop()


def test_a_process_sharing_its_session_leaves_the_sessions_priority_alone():
    # The shell leads the session (as runall does for the web server and the worker); the
    # Python process below it lowers only itself.
    code = (
        "from pathlib import Path; from portal.ops.priority import lower_own_priority; "
        "print(lower_own_priority(6)); "
        "p = Path('/proc/self/autogroup'); print(p.read_text().split()[-1] if p.exists() else 0)"
    )
    result = run(
        ["/bin/sh", "-c", f'"{sys.executable}" -c "{code}"; true'],
        timeout=120, capture_output=True, text=True, cwd=ROOT, env=child_env(),
    )  # fmt: skip
    own, session = result.stdout.split()
    assert int(own) == 6
    assert int(session) == 0


def test_zero_leaves_the_priority_as_it_is():
    code = "from portal.ops.priority import lower_own_priority; print(lower_own_priority(0))"
    result = run(
        [sys.executable, "-c", code],
        timeout=120, capture_output=True, text=True, cwd=ROOT, env=child_env(),
    )  # fmt: skip
    assert int(result.stdout) == 0
