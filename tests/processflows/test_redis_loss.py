"""Redis killed (SIGKILL) under load while the worker holds unacknowledged messages (acks
late): the worker stays up, reconnects by itself, and runs resume once Redis is back, with
nobody restarting anything.

Celery 5.7.0 exited here ("Unrecoverable error: AttributeError(\"'NoneType' object has no
attribute 'hostname'\")", kombu's restore_unacked called on a connection already collected),
not every time: it depends on whether the consumer was waiting on BRPOP at the kill. Four
busy worker processes and a slow destination make that likely (pyproject caps celery).

The broker is a private redis-server (``tests/redis_server.py``), never the shared one; the
portal's processes (relay, worker, beat) all use it. The test only posts deliveries and
watches the database. It asserts no elapsed time (the machine may be busy): runs resume
within ``CELERY_BROKER_RECONNECT_MAX_SECONDS`` of Redis returning because the worker tries
to reconnect at least that often, which its log shows; the seconds it took are printed.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from django.test import Client

from portal.processflows.models import RunStatus
from tests.processes import wait_for
from tests.processflows.reliability.private_broker import start_beat, start_worker
from tests.processflows.reliability.support import (
    delivery,
    forwarding_hook,
    runs_of,
    scripted_destination,
    start_relay,
)
from tests.redis_server import private_redis

pytestmark = pytest.mark.services

EVENTS = 300
RECONNECT_SECONDS = 1
ENV = {
    "CELERY_BROKER_RECONNECT_MAX_SECONDS": str(RECONNECT_SECONDS),
    "PORTAL_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
    "PORTAL_RUN_LEASE_SECONDS": "5",
    "PORTAL_OUTBOX_REDELIVERY_SECONDS": "2",
    "PORTAL_SWEEP_SECONDS": "1",
}


@pytest.fixture
def broker(tmp_path):
    """A private redis-server (never the shared one): this test kills or watches it."""
    with private_redis(tmp_path) as server:
        yield server


@pytest.fixture
def children():
    started = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.stop()


def succeeded(hook) -> int:
    return runs_of(hook).filter(status=RunStatus.SUCCEEDED).count()


def test_the_worker_survives_redis_killed_under_load_and_runs_resume_when_it_returns(
    transactional_db, settings, broker, children, owner, acme
):
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    env = {**ENV, "REDIS_URL": broker.url()}
    with scripted_destination(201, delay=0.2) as destination:
        hook = forwarding_hook(acme, destination.url)
        worker = start_worker(env, concurrency=4)
        children.append(worker)
        children.append(start_relay(**env))
        children.append(start_beat(env))
        client = Client()
        for i in range(EVENTS):
            assert hook.post(client, delivery(email=f"load{i}@example.com")).status_code == 202

        def logs() -> str:
            return "\n".join(f"--- {p.name}:\n{p.output()[-4000:]}" for p in children)

        # Under load: runs are being forwarded, and more are waiting in the queue.
        wait_for(lambda: len(destination.requests) >= 10, timeout=180,
                 message=f"the worker never reached the destination:\n{logs()}")  # fmt: skip
        broker.kill()
        # An outage, not a blip: long enough for Celery's own backoff to reach 8 s between
        # attempts (2 s, 4 s, 6 s, 8 s), which the worker's steady pace must not.
        time.sleep(10)
        broker.start()
        back = time.monotonic()
        before = succeeded(hook)

        wait_for(lambda: succeeded(hook) >= min(before + 3, EVENTS), timeout=180,
                 message=f"runs did not resume after Redis returned:\n{logs()}")  # fmt: skip
        resumed_after = time.monotonic() - back
        try:
            wait_for(lambda: succeeded(hook) == EVENTS, timeout=300, interval=0.5)
        except AssertionError:
            statuses = Counter(runs_of(hook).values_list("status", flat=True))
            raise AssertionError(f"runs: {statuses}\n{logs()}") from None

    print(f"runs resumed {resumed_after:.1f} s after Redis returned")
    log = worker.output()
    assert worker.popen.poll() is None, f"the worker exited:\n{log}"
    assert "Unrecoverable error" not in log
    assert "Restoring" in log  # it did hold unacknowledged messages when Redis died
    pauses = [float(p) for p in re.findall(r"Trying again in ([0-9.]+) seconds?", log)]
    assert pauses, log  # it did lose the broker, and retried
    assert max(pauses) <= RECONNECT_SECONDS
    # Every accepted event reached the destination (once per Idempotency-Key).
    assert sorted(d["email"] for d in destination.documents) == sorted(
        f"load{i}@example.com" for i in range(EVENTS)
    )
