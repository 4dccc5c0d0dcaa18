"""``manage.py runall``: the web server, a Celery worker, the scheduler and the outbox
relay, together.

For development and demos (``make run``). A child that exits is started again with backoff
(``portal.ops.supervisor``), as Compose's ``restart: unless-stopped`` does in production,
where each runs as its own service (see docker-compose.yml); Ctrl-C stops them all. Unless
``PORTAL_BASE_URL`` is set, the processes are given the URL of ``--addr``, so Processflow URLs
and webhook subscriptions point at the port the portal really listens on.
"""

import os
import signal
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.celery import QUEUES
from portal.ops.supervisor import Supervisor


def base_url_for(addr: str) -> str:
    """The URL a browser on this machine reaches ``runserver <addr>`` at: ``8701``,
    ``127.0.0.1:8701``, ``0.0.0.0:8701``, ``[::1]:8701`` or ``localhost:8701``."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host:  # a port alone
        host, port = "127.0.0.1", addr
    if host in ("0", "0.0.0.0", "[::]"):  # noqa: S104 (every interface includes loopback)
        host = "127.0.0.1"
    return f"http://{host}:{port}"


class Command(BaseCommand):
    help = "Run the web server, a Celery worker, Celery beat and the outbox relay until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr, **options):
        python = sys.executable
        env = os.environ.copy()
        if not env.get("PORTAL_BASE_URL"):
            env["PORTAL_BASE_URL"] = base_url_for(addr)
        url = env["PORTAL_BASE_URL"].rstrip("/")
        # runserver's "do not use in production" notice would read as a fault on a healthy
        # first start; runall is the development command, and says so itself.
        env.setdefault("DJANGO_RUNSERVER_HIDE_WARNING", "true")
        commands = {
            "web": [python, "manage.py", "runserver", addr, "--noreload"],
            "worker": [
                python, "-m", "celery", "-A", "portal", "worker",
                "-Q", ",".join(QUEUES), "--concurrency", "2", "-l", "info",
            ],
            "beat": [
                python, "-m", "celery", "-A", "portal", "beat", "-l", "info",
            ],
            "relay": [python, "manage.py", "relay_outbox"],
        }  # fmt: skip
        supervisor = Supervisor(
            commands, cwd=settings.BASE_DIR, env=env, log=lambda line: self.stderr.write(line)
        )
        supervisor.start()
        self.stdout.write(
            self.style.SUCCESS(
                f"Connect Portal is running at {url}/ (web, worker, beat, relay; for "
                "development: production runs with Docker Compose). Press Ctrl-C to stop."
            )
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                supervisor.check()
                time.sleep(0.2)
        finally:
            supervisor.stop()
            self.stdout.write("Stopped.")
