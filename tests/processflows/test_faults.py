"""Faults with real processes: a worker killed with SIGKILL mid-run, Redis gone during intake,
PostgreSQL gone during intake. Accepted events end processed exactly once; an event that
could not be stored is never acknowledged.

Services are never stopped (other people use them): Redis and PostgreSQL are taken away
from the portal's processes by cutting a TCP proxy in front of them.
"""

from __future__ import annotations

import signal
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from portal.processflows import outbox
from portal.processflows.models import Outbox, Run, RunStatus, TriggerEvent
from tests.factories import every
from tests.netproxy import TcpProxy
from tests.processes import child_database_url as database_url
from tests.processes import purge_queues, start_worker, wait_for
from tests.processflows.reliability.support import (
    Hook,
    all_succeeded,
    delivery,
    forwarding_hook,
    runs_of,
    scripted_destination,
    start_relay,
    start_web,
)

pytestmark = pytest.mark.services

LEASE_SECONDS = 3
BOUND_SECONDS = 1
WORKER_ENV = {
    "PORTAL_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
    "PORTAL_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
    "PORTAL_OUTBOX_REDELIVERY_SECONDS": str(BOUND_SECONDS),
}


@pytest.fixture
def fast_sweeper(transactional_db, settings):
    """The sweeper (run from the test, as beat runs it) re-publishes after one second."""
    settings.PORTAL_OUTBOX_REDELIVERY_SECONDS = BOUND_SECONDS
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    purge_queues()


class Processes:
    """The portal's processes a test starts; every one is stopped at the end.

    Workers are supervised as Compose's ``restart: unless-stopped`` does in production: a
    worker that exits on its own (Celery gives up with "Unrecoverable error" when the broker
    connection drops while it holds an unacknowledged message) is started again.
    """

    def __init__(self):
        self.started = []
        self.workers: list[tuple[object, dict]] = []
        self.restarts = 0

    def worker(self, **env: str):
        process = start_worker(concurrency=2, extra_env={**WORKER_ENV, **env})
        self.started.append(process)
        self.workers.append((process, env))
        return process

    def supervise(self) -> None:
        """Start again every worker that exited although nobody stopped it."""
        for index, (process, env) in enumerate(self.workers):
            if process.popen.poll() is not None:
                self.restarts += 1
                replacement = start_worker(concurrency=2, extra_env={**WORKER_ENV, **env})
                self.started.append(replacement)
                self.workers[index] = (replacement, env)

    def relay(self, **env: str):
        process = start_relay(**env)
        self.started.append(process)
        return process

    def web(self, **env: str) -> str:
        process, url = start_web(**env)
        self.started.append(process)
        return url

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}:\n{p.output()[-3000:]}" for p in self.started)

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()


@pytest.fixture
def processes():
    started = Processes()
    try:
        yield started
    finally:
        started.stop()


def until_all_succeeded(hook: Hook, count: int, processes: Processes, *, sweep: bool) -> None:
    """Wait until ``count`` runs of ``hook`` succeeded, running the sweeper (as beat does)
    every half second if ``sweep``."""

    def done():
        processes.supervise()
        if sweep:
            outbox.sweep()
        return all_succeeded(hook, count)

    try:
        wait_for(done, timeout=180, interval=0.5)
    except AssertionError:
        statuses = Counter(runs_of(hook).values_list("status", flat=True))
        raise AssertionError(f"runs: {statuses}\n{processes.logs()}") from None


def assert_processed_exactly_once(hook: Hook, emails: list[str], received: list) -> None:
    assert sorted(document["email"] for document in received) == sorted(emails)
    events = every(TriggerEvent).filter(deployment=hook.deployment)
    assert events.count() == len(emails)
    assert not Outbox.objects.filter(event__in=events, done_at=None).exists()
    per_event = Counter(runs_of(hook).filter(replay_of=None).values_list("event_id", flat=True))
    assert sorted(per_event.values()) == [1] * len(emails)
    assert set(runs_of(hook).values_list("status", flat=True)) == {RunStatus.SUCCEEDED}


# --- (a) A worker killed with SIGKILL while runs are in flight ------------------------------------


def test_runs_in_flight_when_the_worker_is_killed_end_processed_exactly_once(
    fast_sweeper, processes, owner, acme
):
    emails = [f"guest{i}@example.com" for i in range(6)]
    # The destination holds its answers until released: the worker is certainly killed while
    # its requests are in flight, however slow the machine.
    with scripted_destination(201, hold=True) as destination:
        hook = forwarding_hook(acme, destination.url)
        processes.relay()
        first = processes.worker()
        client = Client()
        for email in emails:
            assert hook.post(client, delivery(email=email)).status_code == 202
        wait_for(
            lambda: len(destination.requests) >= 2,
            message=f"the worker never reached the destination:\n{processes.logs()}",
        )

        first.kill(signal.SIGKILL)
        first.popen.wait(timeout=30)
        assert every(Run).filter(status=RunStatus.RUNNING).exists()  # killed mid-run
        destination.release()
        processes.supervise()  # a new worker, as the process supervisor starts one
        assert processes.restarts == 1
        until_all_succeeded(hook, len(emails), processes, sweep=True)

        received = destination.documents

    assert_processed_exactly_once(hook, emails, received)


# --- (b) Redis unreachable while deliveries arrive ---------------------------------------------


@pytest.fixture
def redis_proxy():
    """A cuttable proxy in front of the run's Redis, and the REDIS_URL that goes through it."""
    redis_url = urlsplit(django_settings.REDIS_URL)
    with TcpProxy((redis_url.hostname, redis_url.port or 6379)) as proxy:
        yield proxy, urlunsplit(redis_url._replace(netloc=f"127.0.0.1:{proxy.port}"))


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_deliveries_accepted_while_redis_is_down_are_processed_exactly_once_after(
    fast_sweeper, processes, redis_proxy, owner, acme
):
    proxy, through_proxy = redis_proxy
    emails = [f"outage{i}@example.com" for i in range(5)]
    with scripted_destination(201) as destination:
        hook = forwarding_hook(acme, destination.url)
        # Every process of the portal reaches Redis only through the proxy.
        url = processes.web(REDIS_URL=through_proxy)
        processes.relay(REDIS_URL=through_proxy)
        processes.worker(REDIS_URL=through_proxy)
        proxy.cut()

        answers = [hook.send(url, delivery(email=email)).status_code for email in emails]

        assert answers == [202] * len(emails), processes.logs()
        assert every(TriggerEvent).filter(deployment=hook.deployment).count() == len(emails)
        proxy.restore()
        until_all_succeeded(hook, len(emails), processes, sweep=True)
        received = destination.documents

    assert_processed_exactly_once(hook, emails, received)


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_the_relay_publishes_what_arrived_during_a_redis_outage_by_itself_once_it_is_back(
    fast_sweeper, processes, redis_proxy, owner, acme
):
    proxy, through_proxy = redis_proxy
    emails = [f"relayed{i}@example.com" for i in range(3)]
    with scripted_destination(201) as destination:
        hook = forwarding_hook(acme, destination.url)
        url = processes.web(REDIS_URL=through_proxy)
        processes.relay(REDIS_URL=through_proxy)
        processes.worker()
        proxy.cut()
        for email in emails:
            assert hook.send(url, delivery(email=email)).status_code == 202

        proxy.restore()

        # No sweeper here: the relay itself catches up once the broker answers again.
        until_all_succeeded(hook, len(emails), processes, sweep=False)
        received = destination.documents

    assert_processed_exactly_once(hook, emails, received)


# --- (c) PostgreSQL unreachable while deliveries arrive ----------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")
def test_intake_answers_503_and_never_2xx_while_the_database_is_unreachable(
    fast_sweeper, processes, owner, acme
):
    database = urlsplit(database_url())
    with (
        TcpProxy((database.hostname, database.port or 5432)) as proxy,
        scripted_destination(201) as destination,
    ):
        auth, at, _ = database.netloc.rpartition("@")
        url = processes.web(
            DATABASE_URL=urlunsplit(database._replace(netloc=f"{auth}{at}127.0.0.1:{proxy.port}"))
        )
        hook = forwarding_hook(acme, destination.url)
        assert hook.send(url, delivery(email="before@example.com")).status_code == 202
        proxy.cut()

        during = [hook.send(url, delivery(email=f"down{i}@example.com")) for i in range(4)]

        assert [answer.status_code for answer in during] == [503] * 4, processes.logs()
        assert all(answer.headers.get("Retry-After") for answer in during)
        proxy.restore()
        after = hook.send(url, delivery(email="after@example.com"))

    assert after.status_code == 202, after.text
    # Before and after: nothing was stored (or half-stored) during the outage.
    assert every(TriggerEvent).filter(deployment=hook.deployment).count() == 2
