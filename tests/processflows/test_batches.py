"""Events processed in batches: one message and one task make and execute the runs of many
events, on threads, each run still made once and claimed by one worker."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from portal.celery import app
from portal.processflows import dispatch, execution, tasks
from portal.processflows.models import Outbox, Run, RunStatus, StepRun
from portal.processflows.writer import Writer
from portal.vault.models import CredentialEvent
from tests.factories import every, make_credential, make_event, make_processflow, make_run
from tests.processes import purge_queues
from tests.processflows.reliability.support import (
    deploy_hook,
    forward_steps,
    rest_credential,
    scripted_destination,
)


@pytest.fixture(autouse=True)
def _threads_stopped():
    """Run threads end with each test, closing their connections to the test database."""
    yield
    execution.stop_threads()


def accepted(hook, count: int) -> list[list[int]]:
    """``count`` stored events with their outbox entries, as ``[organization, event]``."""
    events = []
    for number in range(count):
        event = make_event(
            hook.deployment,
            {"event": "invitee.created", "payload": {"email": f"guest{number}@example.com"}},
        )
        Outbox.objects.create(event=event)
        events.append([event.organization_id, event.pk])
    return events


@pytest.fixture
def forwarding(monkeypatch, settings, acme):
    """A deployed flow that maps each event and POSTs it to a destination on loopback."""
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    with scripted_destination(201) as destination:
        rest = rest_credential(acme, destination.url)
        flow = make_processflow(acme, make_credential(acme), steps=forward_steps(rest))
        yield deploy_hook(flow), destination


def test_one_task_makes_and_executes_the_runs_of_a_batch_on_threads(
    transactional_db, settings, forwarding
):
    settings.PORTAL_WORKER_RUN_THREADS = 4
    hook, destination = forwarding
    events = accepted(hook, 6)

    executed = tasks.process_events(events)
    execution.stop_threads()  # the task ends once each run has a thread

    assert executed == 6
    runs = every(Run).filter(deployment=hook.deployment)
    assert sorted(runs.values_list("status", flat=True)) == [RunStatus.SUCCEEDED] * 6
    assert {(run.attempt, run.lease_owner) for run in runs} == {(1, "")}
    assert all(run.started_at <= run.finished_at for run in runs)
    assert sorted(d["email"] for d in destination.documents) == [
        f"guest{n}@example.com" for n in range(6)
    ]
    assert sorted(r["key"] for r in destination.received) == sorted(
        f"{run.uid}:forward" for run in runs
    )
    steps = StepRun.objects.filter(run__in=runs)
    assert sorted(steps.values_list("name", "status").distinct()) == [
        ("document", RunStatus.SUCCEEDED),
        ("forward", RunStatus.SUCCEEDED),
    ]
    assert steps.count() == 12
    assert not Outbox.objects.filter(done_at__isnull=True).exists()


def test_runs_on_threads_audit_each_use_of_their_credential(transactional_db, settings, forwarding):
    settings.PORTAL_WORKER_RUN_THREADS = 4
    hook, _ = forwarding
    events = accepted(hook, 5)

    tasks.process_events(events)
    execution.stop_threads()  # the writer commits what the threads handed it, then ends

    used = every(CredentialEvent).filter(action=CredentialEvent.Action.USED)
    assert used.count() == 5
    assert {entry.detail["step_action"] for entry in used} == {"post_json"}
    assert all(entry.detail["ok"] for entry in used)


def test_a_write_that_fails_fails_only_its_own_run_not_the_others_committed_with_it(
    transactional_db,
):
    undone = []

    def apply(payloads):
        if "bad" in payloads:
            raise ValueError("this write cannot be made")
        return [payload.upper() for payload in payloads]

    writer = Writer(apply, undone.append)
    try:
        results = {}

        def write(payload):
            try:
                results[payload] = writer.write(payload)
            except ValueError as error:
                results[payload] = error

        threads = [threading.Thread(target=write, args=(p,)) for p in ("a", "bad", "c", "d")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        writer.stop()

    assert {p: r for p, r in results.items() if p != "bad"} == {"a": "A", "c": "C", "d": "D"}
    assert isinstance(results["bad"], ValueError)
    assert "bad" in undone


def test_processing_a_batch_again_makes_no_second_run_nor_forward(
    transactional_db, settings, forwarding
):
    settings.PORTAL_WORKER_RUN_THREADS = 4
    hook, destination = forwarding
    events = accepted(hook, 3)

    first = tasks.process_events(events)
    execution.stop_threads()
    second = tasks.process_events(events)

    assert (first, second) == (3, 0)
    assert every(Run).filter(deployment=hook.deployment).count() == 3
    assert len(destination.requests) == 3


def test_a_batch_naming_another_organizations_events_leaves_them_alone(db, owner, acme, globex):
    hook = deploy_hook(make_processflow(acme, make_credential(acme)))
    events = accepted(hook, 2)

    assert tasks.process_events([[globex.pk, event_id] for _, event_id in events]) == 0

    assert not every(Run).exists()
    assert not Outbox.objects.filter(done_at__isnull=False).exists()


def test_a_run_another_worker_is_claiming_is_skipped_not_waited_for(transactional_db, acme):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite locks the whole database")
    hook = deploy_hook(make_processflow(acme, make_credential(acme)))
    held, free = (make_run(make_event(hook.deployment)) for _ in range(2))
    locked, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                Run.objects.for_tenant(acme).select_for_update().filter(pk=held.pk).get()
                locked.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert locked.wait(timeout=60)
        claimed = execution.claim_runs([(acme.pk, held.pk), (acme.pk, free.pk)])
    finally:
        release.set()
        thread.join()

    assert [run.pk for run in claimed] == [free.pk]
    assert claimed[0].status == RunStatus.RUNNING


def test_events_go_to_the_broker_as_many_to_a_message_as_configured(db, settings):
    if not app.conf.broker_url.startswith("redis"):
        pytest.skip("counts the messages in a Redis queue")
    settings.PORTAL_EVENTS_PER_TASK = 2
    purge_queues()
    try:
        sent = dispatch.publish_events([(1, n) for n in range(5)])
        with app.connection_for_write() as conn:
            queued = conn.default_channel.client.llen("intake")
    finally:
        purge_queues()

    assert (sent, queued) == (5, 3)
