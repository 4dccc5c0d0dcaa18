"""A private ``redis-server`` for tests that kill the broker.

The shared Redis (6379) is used by other people and is never stopped; a test that needs the
broker to die for real (SIGKILL, not a cut proxy) starts its own server on a free port, with
an append-only file fsynced on every write, as Compose runs Redis (``--appendonly yes``): what
was queued before the kill is there again after the restart.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    """A running ``PrivateRedis`` for the ``with`` block."""
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PushCounter:
    """Counts the messages pushed onto each list of a Redis database (LPUSH and RPUSH: every
    Celery message published, and every unacknowledged one restored), from keyspace
    notifications, while the ``with`` block runs. ``counts["intake"]`` is the number of
    messages the ``intake`` queue received."""

    def __init__(self, port: int, db: int = 0):
        import redis

        self.client = redis.Redis(port=port, db=db, socket_connect_timeout=5)
        self.db = db
        self.counts: dict[str, int] = {}
        self._stop = None

    def __enter__(self) -> PushCounter:
        import threading

        self.client.config_set("notify-keyspace-events", "Kl")
        pubsub = self.client.pubsub()
        prefix = f"__keyspace@{self.db}__:"
        pubsub.psubscribe(f"{prefix}*")
        pubsub.get_message(timeout=10)  # the subscription's confirmation
        self._stop = threading.Event()

        def listen() -> None:
            while not self._stop.is_set():
                try:
                    message = pubsub.get_message(timeout=0.2)
                except Exception:  # the server went away: nothing more to count
                    return
                if message and message["data"] in (b"lpush", b"rpush"):
                    key = message["channel"].decode(errors="replace")[len(prefix) :]
                    self.counts[key] = self.counts.get(key, 0) + 1

        self._thread = threading.Thread(target=listen, daemon=True)
        self._thread.start()
        self._pubsub = pubsub
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pubsub.close()
