"""Child processes of the suite: readiness waits out slow starts, and nothing the suite starts
outlives its test or the run, whether the run passes, fails, is interrupted or is killed.

The run-level behaviours are tested on a nested pytest run of a small test file, with the
suite's own hooks (``-p tests.hygiene``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.processes import (
    ROOT,
    Process,
    answers_http,
    end,
    group_members,
    registered,
    run,
    spawn,
    start,
    wait_for,
)
from tests.processflows.reliability.support import free_port

SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]
# A child with a child of its own, as gunicorn and Celery have.
FAMILY = [
    sys.executable,
    "-c",
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    "time.sleep(600)",
]
# An HTTP server that never answers the first request (as gunicorn's first answer waits for
# its worker to boot) and answers every later one.
SLOW_FIRST_ANSWER = """
import http.server, sys, threading, time
first = threading.Event()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if not first.is_set():
            first.set()
            time.sleep(600)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.daemon_threads = True
server.serve_forever()
"""


def family_started(process: Process) -> bool:
    return len(group_members(process.pid)) == 2


def test_a_server_whose_first_answer_times_out_is_ready_once_it_answers():
    port = free_port()
    probe = answers_http(f"http://127.0.0.1:{port}/", read_timeout=1)

    server = start("slow", [sys.executable, "-c", SLOW_FIRST_ANSWER, str(port)], env=os.environ,
                   ready=probe)  # fmt: skip
    try:
        assert server.popen.poll() is None
    finally:
        server.stop()


def test_a_child_that_never_becomes_ready_is_ended_with_its_children_at_the_deadline():
    seen: list[Process] = []

    def never(process: Process) -> bool:
        seen.append(process)
        return False

    with pytest.raises(RuntimeError, match="did not become ready within 2 s"):
        start("never", FAMILY, env=os.environ, ready=never, timeout=2)

    assert group_members(seen[0].pid) == []
    assert seen[0].pid not in [child.pgid for child in registered()]


def test_an_interrupted_readiness_wait_ends_the_child_and_its_children():
    seen: list[Process] = []

    def interrupted(process: Process) -> bool:
        if not family_started(process):
            return False
        seen.append(process)
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM as the suite's hooks turn it into

    with pytest.raises(KeyboardInterrupt):
        start("interrupted", FAMILY, env=os.environ, ready=interrupted)

    assert group_members(seen[0].pid) == []


def test_stopping_a_process_ends_its_whole_process_group():
    process = start("family", FAMILY, env=os.environ, ready=family_started)

    process.stop()

    assert group_members(process.pid) == []
    assert process.pid not in [child.pgid for child in registered()]


# --- Whole runs -------------------------------------------------------------------------------


def nested_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def nested_args(tmp_path: Path) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-p", "tests.hygiene", "-p", "no:django",
        "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path), str(tmp_path),
    ]  # fmt: skip


def nested_run(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_nested.py").write_text(textwrap.dedent(code))
    return run(nested_args(tmp_path), cwd=tmp_path, env=nested_env(), capture_output=True,
               text=True, timeout=300)  # fmt: skip


def child_pid(tmp_path: Path) -> int:
    return int((tmp_path / "child.pid").read_text())


HEADER = f"""
    import subprocess, sys, time
    from pathlib import Path
    import pytest
    from tests.processes import end, spawn
    SLEEP = {SLEEP!r}
    FAMILY = {FAMILY!r}
"""


def test_a_test_that_leaves_a_child_running_errors_and_the_child_is_ended(tmp_path):
    result = nested_run(
        tmp_path,
        HEADER
        + """
    def test_forgets_its_child():
        popen = spawn("forgotten", SLEEP)
        Path("child.pid").write_text(str(popen.pid))
    """,
    )

    assert result.returncode == 1, result.stdout
    pid = child_pid(tmp_path)
    assert f"the test left child processes running (ended now): forgotten (pid {pid}" in (
        result.stdout
    )
    assert group_members(pid) == []


def test_children_that_survive_the_session_fail_the_run_are_named_and_ended(tmp_path):
    result = nested_run(
        tmp_path,
        HEADER
        + """
    @pytest.fixture(scope="session")
    def lasting():
        popen = spawn("lasting", SLEEP, lasting=True)
        Path("child.pid").write_text(str(popen.pid))
        yield popen  # and never ended

    def test_passes(lasting):
        # Started without the registry, in pytest's own process group, never waited for.
        stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(601)"])
        Path("stray.pid").write_text(str(stray.pid))
    """,
    )

    assert result.returncode == 1, result.stdout
    assert "1 passed" in result.stdout
    pid, stray = child_pid(tmp_path), int((tmp_path / "stray.pid").read_text())
    survivors = result.stdout.split("survived the test session (ended now): ")[1]
    assert f"lasting (pid {pid}" in survivors
    assert f"time.sleep(601) (pid {stray})" in survivors
    assert group_members(pid) == []
    assert not Path(f"/proc/{stray}").exists() or "Z" in Path(f"/proc/{stray}/stat").read_text()


def test_pytest_ended_by_sigterm_tears_down_and_ends_every_child(tmp_path):
    (tmp_path / "test_nested.py").write_text(
        textwrap.dedent(
            HEADER
            + """
    @pytest.fixture
    def child():
        popen = spawn("family", FAMILY)
        Path("child.pid").write_text(str(popen.pid))
        yield popen
        end(popen)

    def test_runs_long(child):
        Path("ready").touch()
        time.sleep(600)
    """
        )
    )
    nested = spawn("pytest", nested_args(tmp_path), cwd=tmp_path, env=nested_env(),
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), timeout=120)
        pid = child_pid(tmp_path)
        wait_for(lambda: len(group_members(pid)) == 2, timeout=60)

        os.kill(nested.pid, signal.SIGTERM)
        output, _ = nested.communicate(timeout=120)
    finally:
        end(nested)

    assert nested.returncode == pytest.ExitCode.INTERRUPTED, output
    assert group_members(pid) == []


def test_children_of_a_run_killed_outright_are_ended_by_the_next_run(tmp_path):
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "test_nested.py").write_text(
        textwrap.dedent(
            HEADER
            + """
    def test_is_killed():
        popen = spawn("orphan", SLEEP)
        Path("child.pid").write_text(str(popen.pid))
        time.sleep(600)
    """
        )
    )
    nested = spawn("pytest", nested_args(killed), cwd=killed, env=nested_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: (killed / "child.pid").exists(), timeout=120)
        os.kill(nested.pid, signal.SIGKILL)  # no teardown, no atexit: the child is orphaned
        nested.wait(timeout=60)
    finally:
        end(nested)
    pid = child_pid(killed)
    assert group_members(pid) != []

    next_run = tmp_path / "next"
    next_run.mkdir()
    result = nested_run(next_run, "def test_ok():\n    pass\n")

    assert result.returncode == 0, result.stdout
    assert f"killed earlier run left running: orphan (pid {pid})" in result.stdout
    assert group_members(pid) == []
