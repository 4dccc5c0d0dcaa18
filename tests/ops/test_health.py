"""A real Celery worker runs ``portal.health`` end to end through the broker and the database,
and ``/healthz`` reports database, broker and worker reachability."""

import secrets

import pytest

from portal.ops.models import Heartbeat
from portal.ops.tasks import health
from tests.processes import purge_queues, start_worker, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def worker(transactional_db):
    purge_queues()
    process = start_worker(queues="maintenance")
    yield process
    process.stop()


def test_a_worker_process_runs_the_health_task_through_the_broker_and_the_database(worker):
    nonce = secrets.token_hex(8)
    health.delay(nonce)
    beat = wait_for(
        lambda: Heartbeat.objects.filter(nonce=nonce).first(),
        timeout=30,
        message=f"worker did not record the heartbeat:\n{worker.output()}",
    )
    assert beat.worker.startswith(worker.node)


def test_healthz_reports_every_part_reachable_with_a_worker_running(worker, client):
    response = client.get("/healthz?strict=1")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "database",
        "broker",
        "workers",
    }


def test_healthz_is_degraded_but_serving_without_workers(transactional_db, client):
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["workers"]["ok"] is False
    assert client.get("/healthz?strict=1").status_code == 503
