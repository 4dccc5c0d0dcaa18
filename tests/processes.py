"""Real processes for tests, and the one registry of every child process the suite starts.

Every child is started through ``spawn`` (or ``Process``, ``start``, ``run`` built on it): in
a session and process group of its own, so that it and its own children (gunicorn's and
Celery's workers) are ended together with ``killpg``, and recorded in the registry until it
has been ended. The registry is what makes "no process survives the suite, pass or fail"
hold:

- a readiness probe (``start``) waits until a generous deadline, treats any error as "not
  yet", and ends the child when the deadline passes or anything (even Ctrl-C) interrupts it;
- fixtures end their children at teardown; ``tests/conftest.py`` then ends, and reports as
  an error, any child a test left running, and does the same for the whole session at its
  end; pytest ended by SIGTERM tears down as after Ctrl-C; ``atexit`` is the last resort;
- a ledger under ``var/test-children/`` names the children of a run, so that a run killed
  outright (SIGKILL) has its orphans ended by the next run instead of breaking it (an
  orphan keeps a session on the test database, which then cannot be dropped).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

import connectors

ROOT = Path(__file__).resolve().parent.parent
CLOSED_PORT = "http://127.0.0.1:9"
LOG_DIR = ROOT / "var" / "test-logs"
LEDGER_DIR = ROOT / "var" / "test-children"

# Deadlines are generous: they only bound how long a broken start takes to be reported, and a
# busy machine (two cores shared by several test runs) can take tens of seconds to start one.
READY_SECONDS = float(os.environ.get("PORTAL_TEST_READY_SECONDS", "180"))
STOP_SECONDS = 15.0


# --- The registry -----------------------------------------------------------------------------


@dataclass
class Child:
    """A started child: its process group (= its pid, as a session leader) and who it is."""

    name: str
    popen: subprocess.Popen
    lasting: bool  # outlives the test that started it (module/session fixture)
    started: float  # the leader's start time in clock ticks since boot (Linux), or 0

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def describe(self) -> str:
        return f"{self.name} (pid {self.pgid}: {' '.join(map(str, self.popen.args))[:160]})"


_children: dict[int, Child] = {}
_lock = threading.RLock()


def spawn(name: str, args: list[str], *, lasting: bool = False, **popen_kwargs) -> subprocess.Popen:
    """Start ``args`` in a new session (its own process group) and register it.

    ``lasting``: the child is meant to outlive the test that starts it (a module- or
    session-scoped fixture ends it); otherwise a child still running after its test's
    teardown is ended and reported as that test's error.
    """
    popen = subprocess.Popen(args, start_new_session=True, **popen_kwargs)
    with _lock:
        _children[popen.pid] = Child(name, popen, lasting, _start_ticks(popen.pid) or 0)
        _write_ledger()
    return popen


def end(popen: subprocess.Popen, *, grace: float = STOP_SECONDS) -> bool:
    """End ``popen``'s whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

    Returns whether anything of the group was still running. Safe to call twice."""
    pgid = popen.pid
    running = popen.poll() is None or bool(group_members(pgid))
    if running:
        _signal_group(pgid, signal.SIGTERM)
        if not _wait_group_gone(popen, grace):
            _signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(popen, 10)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=5)
    with _lock:
        _children.pop(pgid, None)
        _write_ledger()
    return running


def registered(*, lasting: bool | None = None) -> list[Child]:
    """Children started and not ended yet (``lasting``: only those of that kind)."""
    with _lock:
        return [c for c in _children.values() if lasting is None or c.lasting == lasting]


def end_all(*, lasting: bool | None = None) -> list[str]:
    """End every registered child (of that kind); return those that were still running."""
    left = []
    for child in registered(lasting=lasting):
        if end(child.popen, grace=5):
            left.append(child.describe())
    return left


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group has any member
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for stat in _all_stats():
        if stat["pgrp"] == pgid and stat["state"] != "Z":
            members.append(stat["pid"])
    return members


def descendants(pid: int | None = None) -> list[dict]:
    """Live processes below ``pid`` (default: this one) in the process tree (Linux only)."""
    root = os.getpid() if pid is None else pid
    stats = [s for s in _all_stats() if s["state"] != "Z"]
    children: dict[int, list[dict]] = {}
    for stat in stats:
        children.setdefault(stat["ppid"], []).append(stat)
    found, todo = [], [root]
    while todo:
        for stat in children.get(todo.pop(), []):
            found.append(stat)
            todo.append(stat["pid"])
    return found


def _all_stats() -> list[dict]:
    stats = []
    proc = Path("/proc")
    if not proc.is_dir():
        return stats
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses.
        fields = raw[raw.rindex(")") + 2 :].split()
        stats.append(
            {
                "pid": int(entry.name),
                "state": fields[0],
                "ppid": int(fields[1]),
                "pgrp": int(fields[2]),
                "session": int(fields[3]),
                "started": int(fields[19]),
                "cmdline": cmdline.strip(),
            }
        )
    return stats


def _start_ticks(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_group_gone(popen: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        popen.poll()  # reap the leader, or it stays a zombie member of its group
        if popen.returncode is not None and not group_members(popen.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# --- The ledger: orphans of a run that was killed outright --------------------------------------


def _ledger_path() -> Path:
    return LEDGER_DIR / f"{os.getpid()}.json"


def _write_ledger() -> None:
    """Name this run's children on disk (called with the lock held)."""
    path = _ledger_path()
    entries = [{"name": c.name, "pgid": c.pgid, "started": c.started} for c in _children.values()]
    try:
        if not entries:
            path.unlink(missing_ok=True)
            return
        LEDGER_DIR.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "started": _start_ticks(os.getpid()) or 0}
        path.write_text(json.dumps({"owner": owner, "children": entries}))
    except OSError:
        pass  # the ledger is a last resort; never fail a test over it


def end_orphans_of_dead_runs() -> list[str]:
    """End the children that earlier runs, since killed, left running; return them."""
    ended = []
    if not LEDGER_DIR.is_dir():
        return ended
    for path in LEDGER_DIR.glob("*.json"):
        try:
            ledger = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        owner = ledger.get("owner", {})
        if _start_ticks(owner.get("pid", 0)) == owner.get("started"):
            continue  # that run is still going (this one, or another terminal's)
        for entry in ledger.get("children", []):
            if _is_orphan_group(entry["pgid"], entry["started"]):
                _signal_group(entry["pgid"], signal.SIGKILL)
                ended.append(f"{entry['name']} (pid {entry['pgid']})")
        path.unlink(missing_ok=True)
    return ended


def _is_orphan_group(pgid: int, started: int) -> bool:
    """Whether process group ``pgid`` is still the one a ledger recorded.

    The recorded child led its own session. While its leader lives, the leader's start time
    tells it apart from a later process that got the same pid; once the leader is gone its
    id cannot be handed out again while any member of the group is alive."""
    members = [
        s for s in _all_stats() if s["pgrp"] == pgid and s["session"] == pgid and s["state"] != "Z"
    ]
    leader = [s for s in members if s["pid"] == pgid]
    if leader:
        return leader[0]["started"] == started
    return any(s["started"] >= started for s in members)


_OWNER = os.getpid()


def _end_everything_at_exit() -> None:
    if os.getpid() == _OWNER:  # not in a forked copy of this process: the children are ours
        end_all()


atexit.register(_end_everything_at_exit)


# --- Children with logs and readiness -----------------------------------------------------------


def child_database_url() -> str:
    """A DATABASE_URL for child processes that points at the database the tests use."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or ''}{port}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env["DATABASE_URL"] = child_database_url()
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"  # readiness lines reach the log as they are written
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    # Tests never reach the internet: every application a test did not point at its sandbox
    # (``<APP>_API_BASE_URL``) is a closed port on loopback (a worker validating a freshly
    # saved credential gets a refusal).
    for app in connectors.all_connectors():
        if app.base_url and not env.get(app.base_url_env):
            env[app.base_url_env] = CLOSED_PORT
    env.update(extra)
    return env


class Process:
    """A registered child in its own process group, its output kept for failure reports."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path = LOG_DIR,
                 *, lasting: bool = False):  # fmt: skip
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        try:
            self.popen = spawn(
                name, args, lasting=lasting, cwd=ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        """Everything the child wrote so far (after ``stop``: everything it wrote)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too)."""
        _signal_group(self.popen.pid, sig)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """End the whole group (SIGTERM, SIGKILL after ``timeout``); safe to call twice."""
        try:
            end(self.popen, grace=timeout)
        finally:
            self._log.close()

    def wait_ready(self, ready: Callable[[], object], *, timeout: float = READY_SECONDS,
                   interval: float = 0.2, what: str = "become ready") -> None:  # fmt: skip
        """Call ``ready`` until it returns a truthy value. An exception from it means "not
        yet" (a slow or refused first answer is normal while a process starts); the child
        exiting, or ``timeout`` passing, is a failure, reported with the child's output."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.popen.returncode} before it "
                    f"did {what}:\n{self.output()}"
                )
            try:
                if ready():
                    return
            except Exception as error:
                last_error = error
            if time.monotonic() >= deadline:
                cause = f" (last probe: {type(last_error).__name__}: {last_error})"
                raise RuntimeError(
                    f"{self.name} did not {what} within {timeout:.0f} s"
                    f"{cause if last_error else ''}:\n{self.output()}"
                )
            time.sleep(interval)


def start(name: str, args: list[str], *, env: dict[str, str], ready: Callable[[Process], object],
          timeout: float = READY_SECONDS, what: str = "become ready", lasting: bool = False,
          ) -> Process:  # fmt: skip
    """Start a child and wait until ``ready(process)`` holds (see ``Process.wait_ready``).

    If it never does, or anything interrupts the wait (an error, Ctrl-C, SIGTERM), the child
    and its whole process group are ended before the exception propagates."""
    process = Process(name, args, env, lasting=lasting)
    try:
        process.wait_ready(lambda: ready(process), timeout=timeout, what=what)
    except BaseException:
        process.stop()
        raise
    return process


def run(args: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a short command, registered like every child: its process
    group is ended if it outlasts ``timeout`` or the wait is interrupted."""
    capture = kwargs.pop("capture_output", False)
    check = kwargs.pop("check", False)
    if capture:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    popen = spawn(str(args[0]).rsplit("/", 1)[-1], args, **kwargs)
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    finally:
        end(popen)  # nothing left of it, whether it finished, timed out or was interrupted
    result = subprocess.CompletedProcess(args, popen.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result


def answers_http(url: str, *, read_timeout: float = 30) -> Callable[[Process], bool]:
    """A readiness probe: ``url`` gave any HTTP answer. A refusal, a reset or a slow answer
    (ReadTimeout) only mean "not yet"."""

    def probe(process: Process) -> bool:
        import requests

        requests.get(url, timeout=(5, read_timeout), allow_redirects=False).close()
        return True

    return probe


def output_contains(text: str) -> Callable[[Process], bool]:
    """A readiness probe: the child has written ``text`` to its output."""
    return lambda process: text in process.output()


# --- The portal's processes ---------------------------------------------------------------------


def start_worker(*, queues: str = "intake,actions,maintenance", concurrency: int = 1,
                 name: str = "worker", pool: str = "prefork", extra_env: dict | None = None,
                 ) -> Process:  # fmt: skip
    """Start ``celery worker`` on the test database and wait until it answers a ping."""
    from portal.celery import app

    node = f"{name}-{time.monotonic_ns()}"
    args = [
        sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queues,
        "-c", str(concurrency), "-P", pool, "-n", f"{node}@%h",
        "-l", "info", "--without-gossip", "--without-mingle",
    ]  # fmt: skip

    def answers_ping(process: Process) -> bool:
        replies = app.control.ping(destination=None, timeout=1.0) or []
        return any(host.startswith(f"{node}@") for reply in replies for host in reply)

    env = child_env(**(extra_env or {}))
    process = start(name, args, env=env, ready=answers_ping, what="answer a ping")
    process.node = node
    return process


def purge_queues() -> None:
    """Drop messages that earlier runs or tests left in the broker."""
    from portal.celery import QUEUES, app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            # A queue that never existed has nothing to purge.
            with contextlib.suppress(Exception):
                channel.queue_purge(queue)


def wait_for(predicate, *, timeout: float = 90, interval: float = 0.1, message: str = ""):
    """Poll ``predicate`` until it returns a truthy value; fail with ``message`` on timeout.

    The deadline only bounds how long a test takes to report a real failure: it is generous
    so that a busy machine is slow, not failing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout} s")
