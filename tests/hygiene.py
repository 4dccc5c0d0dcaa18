"""No child process outlives its test, nor the suite: pytest hooks over ``tests.processes``.

``tests/conftest.py`` uses these hooks; a bare pytest run can load them with
``-p tests.hygiene`` (the suite's own tests of them do).

- Before the run: children that an earlier run left behind when it was killed outright are
  ended (they would hold sessions on the test database).
- After each test's teardown: a child the test started and its fixtures did not end is ended
  and reported as an error of that test.
- At the end of the session (after every fixture's teardown): any registered child still
  running, and any process still running below pytest, is ended and named, and the run
  fails.
- SIGTERM (a CI timeout, ``kill``) tears down as Ctrl-C does, so fixtures end their
  children; a second SIGTERM ends the children at once and exits.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests import processes

_DESCENDANTS_GRACE_SECONDS = 10
_previous_sigterm = None
_terminating = False


def _on_sigterm(signum, frame):
    global _terminating
    if _terminating:
        processes.end_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    _terminating = True
    raise KeyboardInterrupt("pytest received SIGTERM")


def pytest_configure(config):
    global _previous_sigterm
    orphans = processes.end_orphans_of_dead_runs()
    if orphans:
        config.issue_config_time_warning(
            pytest.PytestWarning(
                "ended child processes that a killed earlier run left running: "
                + ", ".join(orphans)
            ),
            stacklevel=2,
        )
    if threading.current_thread() is threading.main_thread():
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)


def pytest_unconfigure(config):
    if _previous_sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _previous_sigterm)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    left = processes.end_all(lasting=False)
    if left:
        pytest.fail(
            "the test left child processes running (ended now): " + "; ".join(left),
            pytrace=False,
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session, exitstatus):
    result = yield  # every fixture has been torn down now
    left = processes.end_all()
    left += _stray_descendants()
    if left:
        message = "child processes survived the test session (ended now): " + "; ".join(left)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message, red=True, bold=True)
        else:
            print(message, flush=True)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return result


def _stray_descendants() -> list[str]:
    """Processes still running below pytest (started without the registry), ended."""
    deadline = time.monotonic() + _DESCENDANTS_GRACE_SECONDS
    while (stray := processes.descendants()) and time.monotonic() < deadline:
        time.sleep(0.1)  # a browser or driver that was just closed may take a moment to exit
    for stat in stray:
        try:
            os.kill(stat["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    return [f"{stat['cmdline'][:160]} (pid {stat['pid']})" for stat in stray]
