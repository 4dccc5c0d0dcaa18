"""A healthy first start on a fresh machine (``make run`` with no environment: SQLite and
the file broker) prints nothing that reads as a fault."""

from __future__ import annotations

import os
import re
import signal
import sys

from tests.processes import ROOT, answers_http, group_members, run, start
from tests.processflows.reliability.support import free_port

ALARMING = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|skipped")


def fresh_machine(var_dir) -> dict[str, str]:
    """No configuration at all, as on a fresh clone, with its own var/ folder."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_URL", "REDIS_URL", "PORTAL_", "DJANGO_", "CALENDLY_"))
    }
    env["PORTAL_VAR_DIR"] = str(var_dir)
    return env


def manage(env, *args: str) -> str:
    result = run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                 text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_first_migrate_and_bootstrap_print_no_warning(tmp_path):
    env = fresh_machine(tmp_path)

    output = manage(env, "migrate", "--no-input")
    output += manage(env, "bootstrap", "--if-empty", "--org-name", "Demo")

    assert "Log in as admin@example.com with the generated password" in output
    assert ALARMING.findall(output) == [], output


def test_the_first_runall_starts_and_stops_on_ctrl_c_without_a_warning(tmp_path):
    env = fresh_machine(tmp_path)
    manage(env, "migrate", "--no-input")
    url = f"http://127.0.0.1:{free_port()}"
    probe = answers_http(f"{url}/healthz")

    def all_started(process) -> bool:
        output = process.output()
        started = all(
            line in output for line in ("ready.", "Outbox relay running.", "beat: Starting")
        )
        return started and probe(process)

    args = [sys.executable, "manage.py", "runall", "--addr", url.removeprefix("http://")]
    process = start("runall", args, env=env, ready=all_started, what="start every process")
    try:
        process.kill(signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        process.popen.wait(timeout=120)
        left = group_members(process.pid)
    finally:
        process.stop()
    output = process.output()

    assert ALARMING.findall(output) == [], output
    assert "Stopped." in output
    assert left == []
