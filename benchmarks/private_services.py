"""A private PostgreSQL cluster and redis-server for a benchmark, on free ports.

The shared services on 5432/6379 are used by everyone on the machine: they are never stopped,
and their connection slots may run out while someone else's benchmark runs. A benchmark that
stops PostgreSQL or kills Redis, or wants figures no neighbour's connections can disturb,
starts its own: ``initdb`` into a temporary directory (trust authentication, loopback only),
``pg_ctl`` on a free port, ``redis-server`` on another, all removed afterwards.

    with private_services() as services:
        services.database_url("portal_bench")    # postgres://postgres@127.0.0.1:<port>/...
        services.redis_url(0)
        services.stop_postgres()                 # pg_ctl stop -m immediate
        services.start_postgres()

PostgreSQL refuses to run as root: when this runs as root, the cluster belongs to the
``postgres`` system user and its commands run through ``su``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise SystemExit("initdb not found (/usr/lib/postgresql/*/bin or PATH)")
    return Path(initdb).parent


class PrivateServices:
    """One PostgreSQL cluster and one redis-server, both this process's own."""

    def __init__(self, directory: Path, *, max_connections: int = 200):
        self.directory = directory
        self.bin = _postgres_bin()
        self.pg_port, self.redis_port = _free_port(), _free_port()
        self.pg_data = directory / "pgdata"
        self.max_connections = max_connections
        self.redis: subprocess.Popen | None = None
        self._as_postgres = os.geteuid() == 0

    # --- PostgreSQL ---

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
        return subprocess.run(command, check=check, capture_output=True, text=True)

    def init_postgres(self) -> None:
        """A new cluster: trust authentication, listening on 127.0.0.1 only."""
        if self._as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self._pg("initdb", "-D", str(self.pg_data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.pg_data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.pg_port}\n"
                f"unix_socket_directories = '{self.directory}'\n"
                f"max_connections = {self.max_connections}\n"
            )

    def start_postgres(self) -> None:
        """Start the cluster and wait until it takes connections."""
        log = self.directory / "postgres.log"
        self._pg("pg_ctl", "-D", str(self.pg_data), "-l", str(log), "-w", "-t", "120", "start")
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(self.database_url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop_postgres(self, mode: str = "immediate") -> None:
        """``pg_ctl stop -m immediate``: what a crash or a power cut does to the server."""
        self._pg("pg_ctl", "-D", str(self.pg_data), "-m", mode, "-w", "stop", check=False)

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{name}"

    # --- Redis ---

    def start_redis(self) -> None:
        """redis-server, append-only as Compose runs it; waits until it answers PING."""
        import redis

        self.redis = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1",
             "--port", str(self.redis_port), "--dir", str(self.directory), "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(port=self.redis_port, socket_connect_timeout=1)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline or self.redis.poll() is not None:
                    raise
            time.sleep(0.1)

    def kill_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(timeout=30)

    def redis_url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{db}"

    def close(self) -> None:
        self.kill_redis()
        if self.pg_data.exists():
            self.stop_postgres("fast")


@contextmanager
def private_services(*, redis: bool = True) -> Iterator[PrivateServices]:
    """A started private PostgreSQL (and Redis unless ``redis`` is False), stopped and
    deleted on the way out."""
    directory = Path(tempfile.mkdtemp(prefix="portal-private-"))
    services = PrivateServices(directory)
    try:
        services.init_postgres()
        services.start_postgres()
        if redis:
            services.start_redis()
        yield services
    finally:
        services.close()
        shutil.rmtree(directory, ignore_errors=True)
