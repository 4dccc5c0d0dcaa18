"""A private ``redis-server`` for tests that kill the broker.

The shared Redis (6379) is used by other people and is never stopped; a test that needs the
broker to die for real (SIGKILL, not a cut proxy) starts its own server on a free port, with
an append-only file fsynced on every write, as Compose runs Redis (``--appendonly yes``): what
was queued before the kill is there again after the restart.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.processes import Process, start

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers_ping(port: int):
    def probe(process: Process) -> bool:
        import redis

        return redis.Redis(port=port, socket_connect_timeout=2, socket_timeout=5).ping()

    return probe


class PrivateRedis:
    """A redis-server on ``127.0.0.1:port`` with its data in ``directory``; ``kill()`` it
    with SIGKILL and ``start()`` it again on the same port with the same data."""

    def __init__(self, directory: Path):
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.port = _free_port()
        self.process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        args = [
            REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.directory), "--save", "",
            "--appendonly", "yes", "--appendfsync", "always",
        ]  # fmt: skip
        self.process = start(
            "redis-server", args, env={}, ready=_answers_ping(self.port), what="answer PING"
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final write, connections reset."""
        assert self.process is not None
        self.process.kill(signal.SIGKILL)
        self.process.popen.wait(timeout=30)
        self.process.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
