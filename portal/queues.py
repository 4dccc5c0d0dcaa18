"""Sending work to the Celery workers by task name, without waiting out a broker outage.

Services publish work by name (``portal.actions.execute_run``) rather than by importing the
task functions, so a task module may import services but nothing imports task modules:
the arrows run one way. Callers keep the state that says the work is due in the database,
so a sweeper or reconciler sends it again later: a broker outage must never fail a request
whose transaction already committed.

Finding the broker down costs a connection timeout (seconds), so after one failure this
process does not try again for ``BROKER_RETRY_SECONDS``: during an outage nothing that
enqueues (the relay, a deploy, a worker queueing a run) waits out the timeout every time.
"""

from __future__ import annotations

import logging
import time

from celery.exceptions import NotRegistered
from kombu.exceptions import OperationalError as BrokerUnavailable

from portal.celery import app

logger = logging.getLogger(__name__)

# After the broker was found unreachable, publishing is skipped this long (per process).
BROKER_RETRY_SECONDS = 5.0
_broker_down_until = 0.0


def _task(name: str):
    """The registered task ``name`` (not ``send_task``, so that eagerly configured tasks run
    inline). A web process has not imported the task modules yet: Celery's own
    autodiscovery imports them on first use."""
    try:
        return app.tasks[name]
    except NotRegistered:
        app.loader.import_default_modules()
        return app.tasks[name]


def enqueue(task_name: str, *args, countdown: float = 0) -> bool:
    """Send ``task_name(*args)`` to the broker; False (logged) if it is unreachable."""
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        return False
    task = _task(task_name)
    try:
        task.apply_async(args, countdown=countdown or None, retry=False)
    except (BrokerUnavailable, OSError) as error:
        _broker_down_until = time.monotonic() + BROKER_RETRY_SECONDS
        logger.warning(
            "%s%s not queued (%s); not publishing for %.0f s, the sweeper catches up",
            task_name, args, type(error).__name__, BROKER_RETRY_SECONDS,
        )  # fmt: skip
        return False
    except Exception as error:  # anything else the broker raises leaves the work pending too
        logger.warning("%s%s not queued (%s)", task_name, args, type(error).__name__)
        return False
    return True


def queue_depth(queue: str) -> int | None:
    """Messages waiting in ``queue`` (not those workers hold), or None if the broker cannot
    be asked (it is down, or was found down moments ago)."""
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        return None
    try:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            try:
                return channel.queue_declare(queue=queue, passive=True).message_count
            except connection.channel_errors:
                return 0  # a queue never declared, or emptied (Redis drops an empty list)
    except Exception as error:  # unreachable, or anything else the broker raises
        _broker_down_until = time.monotonic() + BROKER_RETRY_SECONDS
        logger.warning("the depth of queue %s is unknown (%s)", queue, type(error).__name__)
        return None
