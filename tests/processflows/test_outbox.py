"""The outbox between intake and Celery, and the sweeper that re-publishes what is overdue:
a lost publish or a dead worker delays an event, and each event still makes one run."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal.processflows import outbox, tasks
from portal.processflows.models import Outbox, Run, RunStatus
from portal.processflows.relay import relay_once
from tests.factories import every, make_credential, make_event, make_processflow, make_run
from tests.processes import purge_queues
from tests.processflows.reliability.support import Hook, deploy_hook, eager_tasks

BOUND = 60


@pytest.fixture(autouse=True)
def _bound(settings):
    settings.PORTAL_OUTBOX_REDELIVERY_SECONDS = BOUND


@pytest.fixture(autouse=True)
def _empty_queues():
    """The sweeper reads the queues' depth: no message of an earlier test may be in them."""
    purge_queues()
    yield
    purge_queues()


def take_from_queue(queue: str, count: int) -> None:
    """Consume ``count`` messages without acknowledging them, as a worker killed right
    after taking them leaves the queue: the oldest first."""
    from portal.celery import app

    with app.connection_for_write() as conn:
        for _ in range(count):
            assert conn.default_channel.basic_get(queue=queue, no_ack=True) is not None


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """``sweep()`` with tasks run where they are sent, as a worker would run them, and what
    their commits publish run too."""

    def sweep_and_work() -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            return outbox.sweep()

    with eager_tasks():
        yield sweep_and_work


@pytest.fixture
def hook(owner, acme) -> Hook:
    return deploy_hook(make_processflow(acme, make_credential(acme)))


def accepted(hook: Hook, *, age: float = 0, email: str = "ada@example.com") -> Outbox:
    """An event with its outbox entry, as intake commits them, ``age`` seconds ago; nothing
    was published (as when the broker was down at the time)."""
    event = make_event(hook.deployment, {"event": "invitee.created", "payload": {"email": email}})
    entry = Outbox.objects.create(event=event)
    Outbox.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(seconds=age))
    return entry


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


# --- The relay ------------------------------------------------------------------------------------


def test_the_relay_publishes_a_stored_event_at_once_and_marks_it(
    hook, django_capture_on_commit_callbacks
):
    entry = accepted(hook)

    with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
        assert relay_once() == 1

    entry.refresh_from_db()
    assert entry.published_at is not None
    assert entry.done_at is not None
    assert every(Run).get(event=entry.event).status == RunStatus.SUCCEEDED


def test_the_relay_publishes_each_entry_once(hook):
    accepted(hook)
    accepted(hook, email="grace@example.com")

    assert [relay_once(), relay_once()] == [2, 0]


def test_the_sweeper_leaves_an_entry_the_relay_published_alone_within_the_bound(hook):
    entry = accepted(hook, age=BOUND + 1)
    relay_once()

    assert outbox.sweep()["events"] == 0
    entry.refresh_from_db()
    assert entry.publish_attempts == 1


# --- The sweeper: events --------------------------------------------------------------------------


def test_an_event_never_published_is_published_once_the_bound_has_passed(hook, sweep):
    entry = accepted(hook, age=BOUND + 1)

    assert sweep()["events"] == 1

    run = every(Run).get(event=entry.event)
    assert run.status == RunStatus.SUCCEEDED
    assert run.output == {"email": "ada@example.com"}
    entry.refresh_from_db()
    assert entry.done_at is not None
    assert entry.publish_attempts == 1


def test_an_event_younger_than_the_bound_is_left_to_the_relay(hook, sweep):
    entry = accepted(hook, age=BOUND - 5)

    assert sweep()["events"] == 0
    assert not every(Run).filter(event=entry.event).exists()


def test_a_done_entry_is_not_published_again(hook, sweep):
    entry = accepted(hook, age=BOUND + 1)
    sweep()
    Outbox.objects.filter(pk=entry.pk).update(created_at=ago(10 * BOUND))

    assert sweep()["events"] == 0
    assert every(Run).filter(event=entry.event).count() == 1


def test_an_entry_whose_message_still_waits_in_the_queue_is_not_published_again(hook):
    entry = accepted(hook, age=BOUND + 1)
    first = outbox.sweep()
    second = outbox.sweep()
    Outbox.objects.filter(pk=entry.pk).update(published_at=ago(10 * BOUND))

    third = outbox.sweep()

    assert [first["events"], second["events"], third["events"]] == [1, 0, 0]
    entry.refresh_from_db()
    assert entry.publish_attempts == 1


def test_an_entry_published_but_never_done_is_published_again_once_its_message_is_lost(hook):
    entry = accepted(hook, age=BOUND + 1)
    outbox.sweep()
    take_from_queue("intake", 1)  # its worker died with it
    within_the_bound = outbox.sweep()
    Outbox.objects.filter(pk=entry.pk).update(published_at=ago(BOUND + 1))

    after_the_bound = outbox.sweep()

    assert [within_the_bound["events"], after_the_bound["events"]] == [0, 1]
    entry.refresh_from_db()
    assert entry.publish_attempts == 2


def test_while_a_backlog_drains_no_entry_is_published_again(hook):
    entries = [accepted(hook, email=f"guest{i}@example.com") for i in range(5)]
    relay_once()
    Outbox.objects.filter(pk__in=[e.pk for e in entries]).update(
        created_at=ago(10 * BOUND), published_at=ago(5 * BOUND)
    )

    assert outbox.sweep()["events"] == 0


def test_only_as_many_entries_as_the_queue_lost_are_published_again_oldest_first(hook, settings):
    settings.PORTAL_EVENTS_PER_TASK = 1  # one message per event: the queue counts entries
    entries = [accepted(hook, email=f"guest{i}@example.com") for i in range(5)]
    relay_once()
    for age, entry in zip(range(9, 4, -1), entries, strict=True):
        Outbox.objects.filter(pk=entry.pk).update(
            created_at=ago(10 * BOUND), published_at=ago(age * BOUND)
        )
    take_from_queue("intake", 2)

    assert outbox.sweep()["events"] == 2

    attempts = Outbox.objects.filter(pk__in=[e.pk for e in entries]).order_by("pk")
    assert list(attempts.values_list("publish_attempts", flat=True)) == [2, 2, 1, 1, 1]


def test_a_queued_message_counts_as_a_full_batch_of_events(hook, settings):
    settings.PORTAL_EVENTS_PER_TASK = 2
    entries = [accepted(hook, email=f"guest{i}@example.com") for i in range(5)]
    relay_once()  # three messages: two events, two, one
    for age, entry in zip(range(9, 4, -1), entries, strict=True):
        Outbox.objects.filter(pk=entry.pk).update(
            created_at=ago(10 * BOUND), published_at=ago(age * BOUND)
        )
    take_from_queue("intake", 1)

    # Two messages left may hold four events: only the fifth is surely lost, the oldest.
    assert outbox.sweep()["events"] == 1
    attempts = Outbox.objects.filter(pk__in=[e.pk for e in entries]).order_by("pk")
    assert list(attempts.values_list("publish_attempts", flat=True)) == [2, 1, 1, 1, 1]


def test_a_sweep_while_another_is_running_does_nothing(hook):
    accepted(hook, age=BOUND + 1)
    holding, release = threading.Event(), threading.Event()

    def another_sweep():
        try:
            with outbox._only_one_sweeper() as mine:
                assert mine
                holding.set()
                release.wait(timeout=120)
        finally:
            connection.close()

    other = threading.Thread(target=another_sweep)
    other.start()
    try:
        assert holding.wait(timeout=120)
        during = outbox.sweep()
    finally:
        release.set()
        other.join(timeout=120)
    after = outbox.sweep()

    assert (during["skipped"], during["events"]) == (1, 0)
    assert (after["skipped"], after["events"]) == (0, 1)


def test_beat_drops_a_sweep_the_worker_did_not_take_before_the_next_is_due(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-outbox"]

    assert 0 < entry["options"]["expire_seconds"] <= entry["schedule"]


def test_processing_an_event_twice_makes_one_run(hook):
    entry = accepted(hook)

    first = tasks.process_event(hook.flow.organization_id, entry.event_id)
    second = tasks.process_event(hook.flow.organization_id, entry.event_id)

    assert first == second
    assert every(Run).filter(event=entry.event).count() == 1
    entry.refresh_from_db()
    assert entry.done_at is not None


def test_processing_an_event_in_two_workers_at_once_makes_one_run(transactional_db, owner, acme):
    hook = deploy_hook(make_processflow(acme, make_credential(acme)))
    entry = accepted(hook)
    barrier = threading.Barrier(2)
    results = []

    def worker():
        barrier.wait()
        try:
            results.append(tasks.process_event(hook.flow.organization_id, entry.event_id))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert every(Run).filter(event=entry.event).count() == 1
    assert results[0] == results[1]


def test_processing_an_event_that_no_longer_exists_does_nothing(hook):
    entry = accepted(hook)
    event_id = entry.event_id
    entry.event.delete()

    assert tasks.process_event(hook.flow.organization_id, event_id) is None
    assert not every(Run).exists()


def test_a_message_naming_another_organizations_event_does_nothing(hook, globex):
    entry = accepted(hook)

    assert tasks.process_event(globex.pk, entry.event_id) is None
    assert not every(Run).exists()


def test_messages_queued_before_they_carried_their_organization_are_skipped_and_sent_again(
    hook, sweep
):
    entry = accepted(hook, age=BOUND + 1)
    run = make_run(accepted(hook, email="grace@example.com").event)

    # The old form of each message: the row's id alone.
    assert tasks.process_event(entry.event_id) is None
    assert tasks.execute_run(run.pk) is None
    assert not every(Run).filter(event=entry.event).exists()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED

    # What they asked for is still due: the sweeper sends it again, in the new form.
    assert sweep()["events"] == 1
    assert every(Run).get(event=entry.event).status == RunStatus.SUCCEEDED


# --- The sweeper: runs ----------------------------------------------------------------------------


def test_a_run_whose_worker_died_is_taken_over_when_its_lease_expires(hook, sweep):
    run = make_run(
        make_event(hook.deployment),
        status=RunStatus.RUNNING,
        attempt=1,
        lease_owner="worker-killed-with-sigkill",
        lease_expires_at=ago(1),
    )

    swept = sweep()

    run.refresh_from_db()
    assert swept["released"] == 1
    assert run.status == RunStatus.SUCCEEDED
    assert run.attempt == 2
    assert run.lease_owner == ""


def test_a_run_whose_lease_is_still_valid_is_left_to_its_worker(hook, sweep):
    run = make_run(
        make_event(hook.deployment),
        status=RunStatus.RUNNING,
        attempt=1,
        lease_owner="a-live-worker",
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )

    assert sweep() == {"events": 0, "runs": 0, "released": 0, "skipped": 0}
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.lease_owner == "a-live-worker"


def test_a_queued_run_whose_message_was_lost_is_queued_again_after_the_bound(hook, sweep):
    run = make_run(make_event(hook.deployment))
    every(Run).filter(pk=run.pk).update(created_at=ago(BOUND + 1))

    assert sweep()["runs"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


def test_a_queued_run_younger_than_the_bound_is_left_in_the_queue(hook):
    make_run(make_event(hook.deployment))

    assert outbox.sweep()["runs"] == 0


def test_a_waiting_run_is_published_again_at_most_once_per_bound(hook):
    run = make_run(make_event(hook.deployment))
    every(Run).filter(pk=run.pk).update(created_at=ago(BOUND + 1))

    first = outbox.sweep()["runs"]
    second = outbox.sweep()["runs"]
    take_from_queue("actions", 1)
    every(Run).filter(pk=run.pk).update(next_attempt_at=ago(BOUND + 1))
    third = outbox.sweep()["runs"]

    assert [first, second, third] == [1, 0, 1]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_a_waiting_run_whose_message_is_still_queued_is_not_published_again(hook):
    run = make_run(make_event(hook.deployment))
    every(Run).filter(pk=run.pk).update(created_at=ago(BOUND + 1))
    outbox.sweep()
    every(Run).filter(pk=run.pk).update(next_attempt_at=ago(10 * BOUND))

    assert outbox.sweep()["runs"] == 0


def test_a_retrying_run_not_yet_due_is_left_alone(hook):
    run = make_run(
        make_event(hook.deployment),
        status=RunStatus.RETRYING,
        attempt=1,
        next_attempt_at=timezone.now() + timedelta(seconds=300),
    )
    every(Run).filter(pk=run.pk).update(created_at=ago(10 * BOUND))

    assert outbox.sweep()["runs"] == 0


def test_a_retrying_run_overdue_by_more_than_the_bound_is_queued_again(hook, sweep):
    run = make_run(
        make_event(hook.deployment),
        status=RunStatus.RETRYING,
        attempt=1,
        next_attempt_at=ago(BOUND + 1),
    )

    assert sweep()["runs"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.attempt == 2


def test_finished_runs_are_never_published_again(hook):
    event = make_event(hook.deployment)
    make_run(event, status=RunStatus.SUCCEEDED, attempt=1)
    every(Run).update(created_at=ago(10 * BOUND))

    assert outbox.sweep()["runs"] == 0
