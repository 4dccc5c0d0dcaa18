"""Real processes for tests: Celery workers (and later servers) started as subprocesses
against the test database, stopped at the end of the test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

import connectors

ROOT = Path(__file__).resolve().parent.parent
CLOSED_PORT = "http://127.0.0.1:9"


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
    """A child process in its own process group, with its output kept for failure reports."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log.close()


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
    process = Process(name, args, child_env(**(extra_env or {})), ROOT / "var" / "test-logs")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{process.output()}")
        replies = app.control.ping(timeout=0.5) or []
        if any(host.startswith(f"{node}@") for reply in replies for host in reply):
            process.node = node
            return process
    process.stop()
    raise RuntimeError(f"worker did not answer a ping within 60 s:\n{process.output()}")


def purge_queues() -> None:
    """Drop messages that earlier runs or tests left in the broker."""
    from portal.celery import QUEUES, app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            # A queue that never existed has nothing to purge.
            with contextlib.suppress(Exception):
                channel.queue_purge(queue)


def wait_for(predicate, *, timeout: float = 30, interval: float = 0.1, message: str = ""):
    """Poll ``predicate`` until it returns a truthy value; fail with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout} s")
