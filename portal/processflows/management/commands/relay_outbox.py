"""``manage.py relay_outbox``: publish accepted webhook events to Celery until stopped."""

import signal
import threading

from django.core.management.base import BaseCommand

from portal.ops.priority import lower_own_priority
from portal.processflows import relay


class Command(BaseCommand):
    help = (
        "Move accepted events from the outbox table into Celery (see "
        "portal/processflows/relay.py). Runs until SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--idle", type=float, default=0.05, help="seconds between polls")

    def handle(self, *args, idle: float, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        # Publishing can wait a moment; answering a webhook sender cannot (PORTAL_WORKER_NICE).
        lower_own_priority()
        self.stdout.write("Outbox relay running.")
        relay.run(stop, idle=idle)
        self.stdout.write("Outbox relay stopped.")
