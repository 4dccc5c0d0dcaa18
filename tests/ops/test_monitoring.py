"""What an operator watches, with the portal's real processes: ``/metrics`` served by gunicorn
adds up what the web process, the relay and a Celery worker counted, and with
``LOG_FORMAT=json`` one delivery can be followed by its request id and event id through the
web process, the relay and the worker."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from portal.processflows.models import RunStatus
from tests.processes import purge_queues, start_worker, wait_for
from tests.processflows.reliability.support import (
    all_succeeded,
    delivery,
    forwarding_hook,
    runs_of,
    scripted_destination,
    signed,
    start_relay,
    start_web,
)

pytestmark = pytest.mark.services

TOKEN = "metrics-token-0123456789abcdef"


class Portal:
    """The web server (gunicorn), the relay and a worker, sharing one fresh metrics
    directory and logging JSON."""

    def __init__(self, metrics_dir):
        self.env = {
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PORTAL_METRICS_TOKEN": TOKEN,
            "LOG_FORMAT": "json",
            "PORTAL_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            "PORTAL_MAX_REQUEST_BYTES": "4096",
        }
        self.processes = []

    def start(self, *, with_workers: bool) -> None:
        web, self.url = start_web(**self.env)
        self.web = self._keep(web)
        if with_workers:
            self.relay = self._keep(start_relay(**self.env))
            self.worker = self._keep(start_worker(extra_env=self.env))

    def _keep(self, process):
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}:\n{p.output()[-4000:]}" for p in self.processes)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample of /metrics by (name, sorted labels)."""
        answer = requests.get(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }


@pytest.fixture
def portal(transactional_db, tmp_path):
    purge_queues()
    started = Portal(tmp_path / "metrics")
    (tmp_path / "metrics").mkdir()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def destination():
    with scripted_destination(201) as served:
        yield served


def json_lines(output: str) -> list[dict]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:  # the line being written as we read
                continue
    return lines


def test_metrics_count_an_accepted_and_a_refused_delivery_with_its_reason(
    portal, acme, destination
):
    hook = forwarding_hook(acme, destination.url)
    portal.start(with_workers=False)
    body = delivery()

    accepted = requests.post(portal.url + hook.path, data=body, headers=signed(hook.key, body),
                             timeout=60)  # fmt: skip
    refused = requests.post(portal.url + hook.path, data=body,
                            headers=signed("not-the-key", body), timeout=60)  # fmt: skip

    # Refused by middleware before intake sees it (over PORTAL_MAX_REQUEST_BYTES): counted too.
    huge = requests.post(portal.url + hook.path, data=b"{" + b" " * 8192 + b"}",
                         headers=signed(hook.key, b"{}"), timeout=60)  # fmt: skip

    assert (accepted.status_code, refused.status_code, huge.status_code) == (202, 401, 413)
    metrics = portal.metrics()
    assert metrics[("portal_webhook_deliveries_accepted_total", (("duplicate", "false"),))] == 1
    assert metrics[("portal_webhook_deliveries_rejected_total", (("reason", "signature"),))] == 1
    assert metrics[("portal_webhook_deliveries_rejected_total", (("reason", "too_large"),))] == 1
    assert metrics[("portal_webhook_deliveries_rejected_total", (("reason", "unknown_hook"),))] == 0
    assert metrics[("portal_outbox_backlog", ())] == 1  # no relay or worker is running


def test_metrics_report_runs_by_status_and_their_durations_after_a_real_run(
    portal, acme, destination
):
    hook = forwarding_hook(acme, destination.url)
    portal.start(with_workers=True)

    succeeded = ("portal_run_duration_seconds_count", (("status", RunStatus.SUCCEEDED.value),))

    hook.send(portal.url, delivery())
    wait_for(lambda: all_succeeded(hook, 1), timeout=180, message=portal.logs())

    # The worker counts the run just after recording it: the scrape may come first.
    metrics = wait_for(
        lambda: (found := portal.metrics()).get(succeeded) and found,
        timeout=60, message=portal.logs(),
    )  # fmt: skip
    assert metrics[succeeded] == 1
    assert metrics[("portal_runs", (("status", "queued"),))] == 0
    assert metrics[("portal_runs", (("status", "running"),))] == 0
    forward = (("application", "rest"), ("status", "succeeded"), ("type", "action"))
    assert metrics[("portal_step_duration_seconds_count", forward)] == 1
    assert metrics[("portal_outbox_backlog", ())] == 0
    assert metrics[("portal_queue_messages", (("queue", "intake"),))] == 0


def test_one_delivery_is_followed_by_its_request_id_through_web_relay_and_worker_logs(
    portal, acme, destination
):
    hook = forwarding_hook(acme, destination.url)
    portal.start(with_workers=True)
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    body = delivery()
    headers = {**signed(hook.key, body), "X-Request-ID": request_id}

    answer = requests.post(portal.url + hook.path, data=body, headers=headers, timeout=60)
    wait_for(lambda: all_succeeded(hook, 1), timeout=180, message=portal.logs())

    assert answer.headers["X-Request-ID"] == request_id
    event_id = answer.json()["event"]
    run_id = runs_of(hook).get().pk

    def lines_of(process, **ids) -> list[dict]:
        return [
            line
            for line in json_lines(process.output())
            if all(line.get(name) == value for name, value in ids.items())
        ]

    traced = {"request_id": request_id, "event_id": event_id}
    # The worker logs the run's end just after recording it: the test may look first.
    worker_lines = wait_for(
        lambda: lines_of(portal.worker, **traced, run_id=run_id), timeout=60,
        message=portal.logs(),
    )  # fmt: skip
    assert lines_of(portal.web, **traced, message="webhook delivery accepted"), portal.logs()
    assert lines_of(portal.relay, **traced, message=f"event {event_id} published"), portal.logs()
    assert {"time", "level", "logger", "message"} <= set(worker_lines[0])
