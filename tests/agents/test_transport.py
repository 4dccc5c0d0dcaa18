"""The agent transport as the agent program speaks it: long-poll for work, report a run's
steps and outcome, renew leases; leases lost are 409, finishing twice changes nothing, a
poll whose agent hung up leases nothing."""

from __future__ import annotations

import socket
import threading

import pytest
import redis
from django import db
from django.conf import settings
from django.utils import timezone

from portal.agents import jobs
from portal.agents.wake import _key
from portal.processflows import dispatch, outbox
from portal.processflows.models import Run, RunStatus, StepRun
from tests.agents.conftest import BASE, agent_client
from tests.factories import make_deployment, make_event, make_run, register_agent


def queued_run(flow, **fields) -> Run:
    deployment = flow.deployments.filter(state="active").first() or make_deployment(
        flow, agent_group=flow.agent_group
    )
    return make_run(make_event(deployment), **fields)


def take(client, wait=0) -> list[dict]:
    response = client.get(f"{BASE}jobs", {"wait": wait})
    assert response.status_code == 200, response.content
    return response.json()["jobs"]


def test_a_queued_run_is_handed_to_an_agent_of_its_group_with_a_lease(plant_api, group_flow):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    assert job["kind"] == "run"
    assert job["id"] == f"run:{run.pk}"
    assert job["run"]["lease"]
    assert job["run"]["attempt"] == 1
    assert job["run"]["trigger"]["payload"]["email"] == "ada@example.com"
    assert job["run"]["definition"]["trigger"]["credential"] == "main"
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.agent.name == "Plant A"


def test_a_run_leased_to_one_agent_is_not_handed_to_another(plant_api, group_flow, acme, plant):
    second = register_agent(acme, name="Plant A2", group=plant.agent.group)
    queued_run(group_flow)
    assert len(take(plant_api)) == 1
    assert take(agent_client(second.secret)) == []


def record(position=0, name="document", status="succeeded", **fields) -> dict:
    return {
        "position": position, "name": name, "status": status, "attempts": 1, "request": {},
        "response_status": None, "output": {"email": "ada@example.com"}, "error": "",
        "duration_ms": 3, "started_at": timezone.now().isoformat(),
        "finished_at": timezone.now().isoformat(), **fields,
    }  # fmt: skip


def report(client, run, job, **body):
    return client.post(
        f"{BASE}runs/{run.pk}/report", {"lease": job["run"]["lease"], **body}, format="json"
    )


def test_step_records_are_stored_as_the_runs_steps(plant_api, group_flow):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    response = report(plant_api, run, job, steps=[record()])
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "running"}
    step = StepRun.objects.get(run=run)
    assert (step.name, step.status, step.output) == (
        "document",
        "succeeded",
        {"email": "ada@example.com"},
    )


def test_a_whole_run_is_one_report_its_steps_and_its_outcome(plant_api, group_flow):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    steps = [record(status="running"), record(output={"a": 1})]  # the later record wins
    finish = {"status": "succeeded", "output": {"a": 1}}
    response = report(plant_api, run, job, steps=steps, finish=finish)
    assert response.json() == {"status": "succeeded"}
    run.refresh_from_db()
    assert (run.status, run.output) == ("succeeded", {"a": 1})
    step = StepRun.objects.get(run=run)
    assert (step.status, step.output) == ("succeeded", {"a": 1})


def test_finishing_a_run_succeeds_it_and_finishing_again_with_the_same_lease_changes_nothing(
    plant_api, group_flow
):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    finish = {"status": "succeeded", "output": {"ok": 1}}
    first = report(plant_api, run, job, steps=[record()], finish=finish)
    run.refresh_from_db()
    finished_at = run.finished_at
    again = report(plant_api, run, job, steps=[record()], finish=finish)
    run.refresh_from_db()
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json() == again.json() == {"status": "succeeded"}
    assert (run.status, run.output, run.finished_at) == ("succeeded", {"ok": 1}, finished_at)
    assert StepRun.objects.filter(run=run).count() == 1


def test_a_retryable_failure_is_retried_with_backoff_as_on_the_cloud_agent(plant_api, group_flow):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    finish = {"status": "failed", "error": "503 from the CRM", "retryable": True,
              "retry_after": 120}  # fmt: skip
    response = report(plant_api, run, job, finish=finish)
    run.refresh_from_db()
    assert response.json() == {"status": "retrying"}
    assert run.error == "503 from the CRM"
    assert run.next_attempt_at >= timezone.now() + timezone.timedelta(seconds=100)
    assert take(plant_api) == []  # not due yet


def test_a_permanent_failure_fails_the_run(plant_api, group_flow):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    report(plant_api, run, job, finish={"status": "failed", "error": "400", "retryable": False})
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "400")


@pytest.mark.parametrize(
    "body",
    [
        {"finish": {"status": "nonsense"}},
        {"steps": [{"position": -1}]},
        {"steps": [record(5, "ghost")]},
        {"steps": {}},
    ],
)
def test_a_malformed_report_is_400_and_nothing_is_written(plant_api, group_flow, body):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    assert report(plant_api, run, job, **body).status_code == 400
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert not StepRun.objects.filter(run=run).exists()


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("report", {"steps": [record()]}),
        ("report", {"steps": [record()], "finish": {"status": "succeeded"}}),
        ("lease", {}),
    ],
)
def test_a_lease_taken_over_is_lost_409_and_nothing_is_written(
    plant_api, group_flow, endpoint, body
):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    # The lease expired and another attempt took the run.
    Run.objects.for_tenant(run.organization_id).filter(pk=run.pk).update(
        lease_expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    (again,) = take(plant_api)
    assert again["run"]["lease"] != job["run"]["lease"]
    response = plant_api.post(
        f"{BASE}runs/{run.pk}/{endpoint}", {"lease": job["run"]["lease"], **body}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["message"] == "lease lost"
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert not StepRun.objects.filter(run=run).exists()


def test_renewing_a_lease_pushes_its_expiry(plant_api, group_flow):
    run = queued_run(group_flow)
    (job,) = take(plant_api)
    before = Run.objects.for_tenant(run.organization_id).get(pk=run.pk).lease_expires_at
    response = plant_api.post(
        f"{BASE}runs/{run.pk}/lease", {"lease": job["run"]["lease"]}, format="json"
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.lease_expires_at >= before


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_answers_as_soon_as_a_run_is_queued_for_the_group(
    acme, owner, plant, group_flow
):
    client = agent_client(plant.secret)
    deployment = make_deployment(group_flow, agent_group=group_flow.agent_group)
    event = make_event(deployment)

    def queue_later():
        try:
            run = make_run(event)
            dispatch.publish_run(run.organization_id, run.pk)
        finally:
            db.connection.close()

    timer = threading.Timer(0.5, queue_later)
    timer.start()
    try:
        jobs = take(client, wait=25)
    finally:
        timer.join()
    assert [job["kind"] for job in jobs] == ["run"]


def test_a_run_of_an_agent_group_wakes_the_group_instead_of_going_to_celery(group_flow, plant):
    run = queued_run(group_flow)
    if not settings.REDIS_URL:  # embedded mode: waiting polls look at the database
        assert dispatch.publish_run(run.organization_id, run.pk)
        return
    connection = redis.Redis.from_url(settings.REDIS_URL)
    connection.delete(_key(plant.agent.group_id))
    assert dispatch.publish_run(run.organization_id, run.pk)
    assert connection.llen(_key(plant.agent.group_id)) == 1
    connection.delete(_key(plant.agent.group_id))


def test_the_sweeper_never_sends_an_agent_groups_overdue_run_to_celery(group_flow, settings):
    run = queued_run(group_flow)
    Run.objects.for_tenant(run.organization_id).filter(pk=run.pk).update(
        created_at=timezone.now() - timezone.timedelta(hours=1)
    )
    assert outbox.sweep()["runs"] == 0


def test_one_poll_hands_out_as_many_runs_as_the_agent_has_free_slots(plant_api, group_flow):
    runs = [queued_run(group_flow) for _ in range(3)]
    jobs = plant_api.get(f"{BASE}jobs", {"wait": 0, "limit": 3}).json()["jobs"]
    assert [job["id"] for job in jobs] == [f"run:{run.pk}" for run in runs]
    assert len({job["run"]["lease"] for job in jobs}) == 1  # one claim, one lease token


def test_a_poll_whose_agent_hung_up_leases_nothing(plant_api, group_flow):
    run = queued_run(group_flow)
    ours, theirs = socket.socketpair()
    theirs.close()  # the agent was killed while the portal held its poll
    try:
        response = plant_api.get(f"{BASE}jobs", {"wait": 0}, **{"gunicorn.socket": ours})
    finally:
        ours.close()
    assert response.json() == {"jobs": []}
    run.refresh_from_db()
    assert (run.status, run.attempt, run.lease_owner) == (RunStatus.QUEUED, 0, "")
    assert [job["id"] for job in take(plant_api)] == [f"run:{run.pk}"]


def test_a_poll_whose_agent_hung_up_while_waiting_passes_its_wake_up_on(plant):
    if not settings.REDIS_URL:
        pytest.skip("wake-ups go through Redis")
    connection = redis.Redis.from_url(settings.REDIS_URL)
    key = _key(plant.agent.group_id)
    connection.delete(key)
    connection.lpush(key, "1")  # a run was queued while the poll waited...
    hung_up = iter([False, True])  # ...and its agent is gone when it wakes
    assert jobs.long_poll(plant.agent, wait=25, gone=lambda: next(hung_up)) == []
    assert connection.llen(key) == 1  # for another agent of the group
    connection.delete(key)


def test_a_poll_whose_agent_is_still_connected_is_handed_work(plant_api, group_flow):
    run = queued_run(group_flow)
    ours, theirs = socket.socketpair()
    try:
        response = plant_api.get(f"{BASE}jobs", {"wait": 0}, **{"gunicorn.socket": ours})
    finally:
        ours.close()
        theirs.close()
    assert [job["id"] for job in response.json()["jobs"]] == [f"run:{run.pk}"]


def test_an_agent_is_leased_no_more_runs_than_it_has_free_slots(plant_api, group_flow):
    for _ in range(3):
        queued_run(group_flow)
    assert len(plant_api.get(f"{BASE}jobs", {"wait": 0, "limit": 2}).json()["jobs"]) == 2
    assert plant_api.get(f"{BASE}jobs", {"wait": 25, "limit": 0}).json() == {"jobs": []}
    assert len(take(plant_api)) == 1


@pytest.mark.parametrize("query", [{"wait": "soon"}, {"wait": "nan"}, {"wait": -1}, {"limit": "x"}])
def test_a_malformed_wait_or_limit_is_400(plant_api, query):
    response = plant_api.get(f"{BASE}jobs", query)
    assert response.status_code == 400


def test_a_stray_celery_message_for_an_agent_groups_run_leaves_it_to_the_agents(
    plant_api, group_flow
):
    from portal.processflows import execution

    run = queued_run(group_flow)
    assert execution.execute(run.organization_id, run.pk) is None
    run.refresh_from_db()
    assert (run.status, run.attempt, run.lease_owner) == (RunStatus.QUEUED, 0, "")
    assert take(plant_api)[0]["run"]["attempt"] == 1
