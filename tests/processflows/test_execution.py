"""Executing runs: steps in order and recorded, retries with backoff, permanent failures and
replays, idempotent side effects, redaction, and the shared outbound rate budget."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from connectors.calendly.sandbox import seed
from flows.redaction import redact
from portal.applications import runtime as portal_runtime
from portal.applications.ratebudget import SharedRateBudget
from portal.processflows import execution, runs, services
from portal.processflows.models import Run, RunStatus, StepRun
from tests.factories import every, make_credential, make_event, make_processflow, make_run, owner_of
from tests.processflows.reliability.support import (
    Hook,
    booking_steps,
    deploy_hook,
    forward_steps,
    reach,
    rest_credential,
    scripted_destination,
)

TOKEN = "dest-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def _reachable(monkeypatch, settings, calendly_sandbox):
    reach(monkeypatch, settings, calendly_sandbox)
    settings.PORTAL_RUN_MAX_ATTEMPTS = 5
    settings.PORTAL_RUN_RETRY_BASE_SECONDS = 10


@pytest.fixture
def sandbox(calendly_sandbox):
    return calendly_sandbox


def forwarding(acme, url: str, **kw) -> Hook:
    calendly = make_credential(acme)
    rest = rest_credential(acme, url, token=TOKEN)
    return deploy_hook(make_processflow(acme, calendly, steps=forward_steps(rest, **kw)))


def booking(acme, url: str) -> Hook:
    calendly = make_credential(acme)
    rest = rest_credential(acme, url, token=TOKEN)
    return deploy_hook(make_processflow(acme, calendly, steps=booking_steps(calendly, rest)))


def run_for(hook: Hook, payload: dict | None = None, **fields) -> Run:
    """The run of a fresh event with ``payload`` (as processing the event creates it)."""
    payload = payload or {"email": "ada@example.com"}
    event = make_event(hook.deployment, {"event": "invitee.created", "payload": payload}, **fields)
    return runs.start_run_for_event(event.organization_id, event.pk)


def scheduled_event(sandbox, index: int = 1) -> str:
    return f"{sandbox.url}/scheduled_events/{seed.OWNER_EVENT_UUIDS[index]}"


def due_now(run: Run) -> None:
    """Let the time a retry waits for pass."""
    every(Run).filter(pk=run.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def died_during_last_step(run: Run) -> None:
    """Put the run where a worker killed with SIGKILL leaves it: running, its lease expired,
    the last step sent but never recorded."""
    last = StepRun.objects.filter(run=run).order_by("-position").first()
    last.delete()
    every(Run).filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        lease_owner="killed",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        finished_at=None,
    )


def stored_text(run: Run) -> str:
    """Everything a run and its steps keep in the database, as one text."""
    run.refresh_from_db()
    steps = list(StepRun.objects.filter(run=run).values("request", "output", "error"))
    return json.dumps([run.input, run.output, run.error, steps])


# --- Steps -------------------------------------------------------------------------------------


def test_steps_run_in_order_and_each_is_recorded(owner, acme, sandbox):
    with scripted_destination(201) as destination:
        hook = booking(acme, destination.url)
        run = run_for(hook, {"email": "ada@example.com", "event": scheduled_event(sandbox)})

        assert execution.execute(run.organization_id, run.pk) == RunStatus.SUCCEEDED

    steps = list(StepRun.objects.filter(run=run))
    assert [(s.position, s.name, s.status) for s in steps] == [
        (0, "event", RunStatus.SUCCEEDED),
        (1, "document", RunStatus.SUCCEEDED),
        (2, "forward", RunStatus.SUCCEEDED),
    ]
    fetch, _, forward = steps
    assert fetch.request["method"] == "GET"
    assert fetch.request["url"].endswith(f"/scheduled_events/{seed.OWNER_EVENT_UUIDS[1]}")
    assert fetch.response_status == 200
    assert forward.request["method"] == "POST"
    assert forward.request["url"] == f"{destination.url}/bookings"
    assert forward.response_status == 201
    assert all(s.duration_ms is not None and s.started_at <= s.finished_at for s in steps)
    assert steps[0].finished_at <= steps[1].started_at <= steps[2].started_at
    title = fetch.output["resource"]["name"]
    assert destination.documents == [{"email": "ada@example.com", "title": title}]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.attempt == 1
    assert run.finished_at is not None


def test_the_forwarded_request_carries_an_idempotency_key_of_the_run_and_step(owner, acme):
    with scripted_destination(201) as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)

    assert [r["key"] for r in destination.requests] == [f"{run.uid}:forward"]


def test_a_run_that_is_done_is_not_executed_again(owner, acme):
    with scripted_destination(201) as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)

        assert execution.execute(run.organization_id, run.pk) is None

    assert len(destination.requests) == 1


# --- Failures, retries, replays ----------------------------------------------------------------


def test_a_destination_failing_with_a_500_leaves_the_run_retrying_with_a_backoff(owner, acme):
    with scripted_destination(500) as destination:
        run = run_for(forwarding(acme, destination.url))
        before = timezone.now()

        assert execution.execute(run.organization_id, run.pk) == RunStatus.RETRYING

    run.refresh_from_db()
    assert run.attempt == 1
    assert run.next_attempt_at >= before + timedelta(seconds=10)
    assert "500" in run.error
    forward = StepRun.objects.get(run=run, name="forward")
    assert (forward.status, forward.response_status) == (RunStatus.FAILED, 500)
    # The connector's own quick retries came first (the key makes repeating the POST safe).
    assert forward.request["attempts"] == len(destination.requests) > 1


def test_a_retrying_run_succeeds_when_the_destination_recovers(owner, acme):
    unavailable = (503, {"Retry-After": "0"})
    with scripted_destination(*[unavailable] * 4, 201) as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)
        due_now(run)

        assert execution.execute(run.organization_id, run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    assert (run.status, run.attempt, run.error) == (RunStatus.SUCCEEDED, 2, "")
    assert StepRun.objects.get(run=run, name="forward").attempts == 2
    assert destination.documents == [{"email": "ada@example.com"}]


def test_a_retrying_run_is_not_executed_before_its_next_attempt_is_due(owner, acme):
    with scripted_destination((503, {"Retry-After": "0"})) as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)
        sent = len(destination.requests)

        assert execution.execute(run.organization_id, run.pk) is None

    assert len(destination.requests) == sent


def test_a_429_with_retry_after_schedules_the_next_attempt_no_sooner(owner, acme):
    with scripted_destination((429, {"Retry-After": "120"})) as destination:
        run = run_for(forwarding(acme, destination.url))
        before = timezone.now()

        assert execution.execute(run.organization_id, run.pk) == RunStatus.RETRYING

    run.refresh_from_db()
    assert run.next_attempt_at >= before + timedelta(seconds=120)
    assert len(destination.requests) == 1  # a long wait is not sat out in the worker


def test_a_400_fails_the_run_at_once(owner, acme):
    with scripted_destination(400) as destination:
        run = run_for(forwarding(acme, destination.url))

        assert execution.execute(run.organization_id, run.pk) == RunStatus.FAILED

    run.refresh_from_db()
    assert run.attempt == 1
    assert run.next_attempt_at is None
    assert "400" in run.error
    assert "forward" in run.error
    assert StepRun.objects.get(run=run, name="forward").response_status == 400
    assert len(destination.requests) == 1


def test_a_run_fails_once_its_attempts_are_used_up(owner, acme, settings):
    settings.PORTAL_RUN_MAX_ATTEMPTS = 2
    with scripted_destination((503, {"Retry-After": "0"})) as destination:
        run = run_for(forwarding(acme, destination.url))
        first = execution.execute(run.organization_id, run.pk)
        due_now(run)
        second = execution.execute(run.organization_id, run.pk)

    assert (first, second) == (RunStatus.RETRYING, RunStatus.FAILED)
    run.refresh_from_db()
    assert run.attempt == 2
    assert run.finished_at is not None


def test_a_run_whose_workers_keep_dying_fails_instead_of_being_taken_over_forever(
    owner, acme, settings
):
    settings.PORTAL_RUN_MAX_ATTEMPTS = 3
    with scripted_destination(201) as destination:
        hook = forwarding(acme, destination.url)
        run = make_run(
            make_event(hook.deployment),
            status=RunStatus.RUNNING,
            attempt=3,
            lease_owner="killed",
            lease_expires_at=timezone.now() - timedelta(seconds=1),
        )

        assert execution.execute(run.organization_id, run.pk) == RunStatus.FAILED

    run.refresh_from_db()
    assert "3 attempts" in run.error
    assert destination.requests == []


def test_a_failed_run_replayed_runs_again_as_a_new_run(owner, acme):
    with scripted_destination(400, 201) as destination:
        failed = run_for(forwarding(acme, destination.url))
        execution.execute(failed.organization_id, failed.pk)

        replay = services.replay_run(acme, actor=owner_of(acme), run_id=failed.pk)
        assert execution.execute(replay.organization_id, replay.pk) == RunStatus.SUCCEEDED

    failed.refresh_from_db()
    replay.refresh_from_db()
    assert failed.status == RunStatus.FAILED
    assert (replay.status, replay.replay_of, replay.event) == (
        RunStatus.SUCCEEDED,
        failed,
        failed.event,
    )
    assert destination.documents == [{"email": "ada@example.com"}]
    assert [r["key"] for r in destination.requests] == [
        f"{failed.uid}:forward",
        f"{replay.uid}:forward",
    ]


def test_only_failed_runs_can_be_replayed(owner, acme):
    with scripted_destination(201) as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)

    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="succeeded"):
        services.replay_run(acme, actor=owner_of(acme), run_id=run.pk)


def test_a_step_whose_credential_was_deleted_fails_the_run_saying_so(owner, acme):
    with scripted_destination(201) as destination:
        hook = forwarding(acme, destination.url)
        run = run_for(hook)
        from portal.vault.models import Credential

        every(Credential).filter(application="rest").delete()

        assert execution.execute(run.organization_id, run.pk) == RunStatus.FAILED

    run.refresh_from_db()
    assert "credential was deleted" in run.error


# --- Resuming after a worker died --------------------------------------------------------------


def test_a_run_re_executed_after_its_worker_died_mid_post_is_recorded_once_by_the_destination(
    owner, acme
):
    with scripted_destination(201) as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)
        died_during_last_step(run)

        assert execution.execute(run.organization_id, run.pk) == RunStatus.SUCCEEDED

    assert len(destination.requests) == 2  # sent again, with the same key
    assert destination.documents == [{"email": "ada@example.com"}]
    run.refresh_from_db()
    assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 2)


def test_a_resumed_run_does_not_repeat_an_action_that_succeeded(owner, acme, sandbox):
    with scripted_destination(201) as destination:
        hook = booking(acme, destination.url)
        run = run_for(hook, {"email": "ada@example.com", "event": scheduled_event(sandbox)})
        execution.execute(run.organization_id, run.pk)
        died_during_last_step(run)
        sandbox.clear_exchanges()

        assert execution.execute(run.organization_id, run.pk) == RunStatus.SUCCEEDED

    assert sandbox.exchanges == []
    assert len(destination.documents) == 1


def test_a_retried_run_forwards_what_its_first_attempt_would_have_secrets_included(owner, acme):
    mapping = {"email": "{{ trigger.payload.email }}", "api_token": "{{ trigger.payload.t }}"}
    with scripted_destination(400, 201) as destination:
        run = run_for(
            forwarding(acme, destination.url, mapping=mapping),
            {"email": "a@b.c", "t": "s3cr3t-value"},
        )
        execution.execute(run.organization_id, run.pk)
        every(Run).filter(pk=run.pk).update(status=RunStatus.RETRYING, next_attempt_at=None)

        assert execution.execute(run.organization_id, run.pk) == RunStatus.SUCCEEDED

    assert destination.documents == [{"email": "a@b.c", "api_token": "s3cr3t-value"}]


# --- Redaction ---------------------------------------------------------------------------------


def test_a_runs_stored_input_output_and_steps_have_token_like_values_redacted(owner, acme):
    mapping = {
        "email": "{{ trigger.payload.email }}",
        "api_token": "{{ trigger.payload.api_token }}",
    }
    with scripted_destination(201) as destination:
        run = run_for(
            forwarding(acme, destination.url, mapping=mapping),
            {"email": "ada@example.com", "api_token": "tok-9f8e7d6c5b4a"},
        )
        execution.execute(run.organization_id, run.pk)

    assert destination.documents == [{"email": "ada@example.com", "api_token": "tok-9f8e7d6c5b4a"}]
    run.refresh_from_db()
    assert run.input["payload"]["api_token"] == "[redacted]"
    assert StepRun.objects.get(run=run, name="document").output["api_token"] == "[redacted]"
    assert "tok-9f8e7d6c5b4a" not in stored_text(run)


def test_the_destinations_credential_is_never_stored_even_when_the_destination_echoes_it(
    owner, acme
):
    with scripted_destination(201, echo="Authorization") as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)

    run.refresh_from_db()
    assert run.output["seen"] == "Bearer [redacted]"
    assert TOKEN not in stored_text(run)


def test_an_error_quoting_a_secret_is_stored_without_it(owner, acme):
    with scripted_destination((400, {}), echo="Authorization") as destination:
        run = run_for(forwarding(acme, destination.url))
        execution.execute(run.organization_id, run.pk)

    assert len(destination.requests) == 1
    assert TOKEN not in stored_text(run)


def test_text_the_database_cannot_store_reaches_the_destination_and_is_kept_as_u_fffd(owner, acme):
    """A polled record or an application's answer may hold a NUL, which PostgreSQL stores in
    no text or jsonb column: the destination gets the document as it was; the run's stored
    copies show U+FFFD in its place."""
    with scripted_destination(201) as destination:
        run = run_for(forwarding(acme, destination.url), {"email": "ada\x00@example.com"})
        execution.execute(run.organization_id, run.pk)

    assert destination.documents == [{"email": "ada\x00@example.com"}]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.input["payload"]["email"] == "ada\ufffd@example.com"
    stored = StepRun.objects.get(run=run, name="document").output
    assert stored == {"email": "ada\ufffd@example.com"}


def test_stored_copies_replace_nul_and_unpaired_surrogates_in_keys_and_values():
    document = {"a\x00": ["x\ud800y", 1, None], "api_token": "\x00", "b": "caf\u00e9"}

    assert redact(document) == {
        "a\ufffd": ["x\ufffdy", 1, None],
        "api_token": "[redacted]",
        "b": "caf\u00e9",
    }


# --- The shared rate budget ----------------------------------------------------------------------


def test_workers_together_stay_within_a_credentials_rate_budget(
    transactional_db, owner, acme, sandbox, monkeypatch
):
    budget = 3
    # A small budget that refuses instead of waiting for the next minute (the real one
    # waits), shared between the two threads only through the cache, as between workers.
    monkeypatch.setattr(
        portal_runtime, "_budget", lambda name, per_minute: SharedRateBudget(budget, max_wait=0)
    )
    with scripted_destination(201) as destination:
        hook = booking(acme, destination.url)
        batch = [
            run_for(hook, {"email": f"{i}@example.com", "event": scheduled_event(sandbox, i)})
            for i in range(1, 7)
        ]
        # Start inside one budget window, so that the test is not about a new minute.
        if 60 - time.time() % 60 < 5:
            time.sleep(60 - time.time() % 60 + 0.1)
        sandbox.clear_exchanges()

        def worker(mine: list[Run]):
            try:
                for run in mine:
                    execution.execute(run.organization_id, run.pk)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(batch[i::2],)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    fetches = [e for e in sandbox.exchanges if e.path.startswith("/scheduled_events/")]
    assert len(fetches) == budget
    assert all(e.status == 200 for e in fetches)
    statuses = sorted(
        every(Run).filter(pk__in=[r.pk for r in batch]).values_list("status", flat=True)
    )
    assert statuses == [RunStatus.RETRYING] * 3 + [RunStatus.SUCCEEDED] * 3
    waiting = every(Run).filter(status=RunStatus.RETRYING)
    assert all("rate" in run.error.lower() for run in waiting)
