"""The Celery application.

Reliability settings live in ``portal/settings.py`` (``CELERY_*``): late acknowledgement,
reject on worker lost, prefetch 1, JSON only, time limits. Tasks are routed to three queues
so that a backlog of one kind of work never starves another:

- ``intake``: webhook events accepted by ``/hooks/`` waiting to be processed;
- ``actions``: connector actions and processflow runs on a tenant's behalf;
- ``maintenance``: health checks, re-validation, reconciliation, sweeping.
"""

import functools
import os

from celery import Celery, signals
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu import Queue

from portal.ops import logcontext  # noqa: F401 (its task signals carry log ids across processes)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


class Consumer(CeleryConsumer):
    """Celery's consumer, reconnecting to a lost broker at a steady pace.

    Celery retries with kombu's default backoff (2 s, 4 s, ... up to 30 s between attempts), so
    after a long Redis outage a worker could sit idle for half a minute after Redis is back.
    Here every attempt is at most ``CELERY_BROKER_RECONNECT_MAX_SECONDS`` after the previous
    one: runs resume within that bound of the broker's return (one connection attempt a second
    or so costs nothing while the broker is down).
    """

    def ensure_connected(self, conn):
        steady = self.app.conf.broker_reconnect_max_seconds or 30
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=1, interval_step=1, interval_max=steady
        )
        return super().ensure_connected(conn)


app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUES = ("intake", "actions", "maintenance")
app.conf.task_queues = [Queue(name, routing_key=name) for name in QUEUES]
app.conf.task_routes = {
    "portal.intake.*": {"queue": "intake"},
    "portal.actions.*": {"queue": "actions"},
    "portal.maintenance.*": {"queue": "maintenance"},
    "portal.health": {"queue": "maintenance"},
}
app.autodiscover_tasks()


@signals.worker_init.connect
def _check_encryption_keys(**kwargs) -> None:
    """A worker with the wrong encryption keys refuses to start, naming the key id."""
    from portal.vault.checks import refuse_to_start_without_keys

    refuse_to_start_without_keys()


@signals.worker_init.connect
@signals.beat_init.connect
def _yield_cpu_to_intake(**kwargs) -> None:
    """Workers and beat run nicer than the web server (``PORTAL_WORKER_NICE``): a burst of
    webhooks is answered first, the backlog drains with the CPU left. Set in the main
    process before the pool starts, so every pool child inherits it."""
    from portal.ops.priority import lower_own_priority

    lower_own_priority()
