"""What the portal's processes count as they work, for Prometheus (``/metrics``).

Counters and histograms are kept in prometheus_client's multiprocess mode: every process
(each gunicorn worker, each Celery child, the relay) writes its own memory-mapped files in
one directory (``PROMETHEUS_MULTIPROC_DIR``, by default ``var/metrics``), and ``/metrics``
adds them up. So the figures hold whatever the number of processes, and survive a process
restarting (a new process goes on from the files). Every process of an installation must
share that directory: Docker Compose mounts one volume into each service.

File names carry the host name as well as the process id: containers sharing the volume
have process ids of their own, which may coincide.

What is read from the database or the broker at scrape time (backlog, runs waiting,
queue depth) is in ``portal.ops.backlog``; this module imports nothing of the portal's, so
that every module may record here.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import datetime
from pathlib import Path

from django.conf import settings
from prometheus_client import Counter, Histogram, values

DIRECTORY = Path(settings.PROMETHEUS_MULTIPROC_DIR)
DIRECTORY.mkdir(parents=True, exist_ok=True)
# prometheus_client reads the directory from the environment each time it opens a file.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(DIRECTORY)

_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def _process_identifier() -> str:
    # Called on every write: a forked child (a Celery child) notices it is a new process
    # and opens files of its own.
    return f"{_HOST}-{os.getpid()}"


values.ValueClass = values.MultiProcessValue(_process_identifier)

# --- Webhook intake ---------------------------------------------------------------------------

DELIVERIES_ACCEPTED = Counter(
    "portal_webhook_deliveries_accepted",
    "Webhook deliveries accepted (stored); duplicate=true: already held, stored once.",
    ["duplicate"],
)
DELIVERIES_REJECTED = Counter(
    "portal_webhook_deliveries_rejected",
    "Webhook deliveries refused, by reason.",
    ["reason"],
)
WEBHOOK_PATH = "/hooks/"
# The answer's status says why a delivery was refused; the message's wording may change,
# the reason names here stay.
REJECTION_REASONS = {
    400: "invalid_request",
    401: "signature",
    404: "unknown_hook",
    405: "method_not_allowed",
    413: "too_large",
    503: "unavailable",
}

# --- Runs and steps ---------------------------------------------------------------------------

RUN_DURATION = Histogram(
    "portal_run_duration_seconds",
    "Finished runs, from their first start to their end (retries included), by status.",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
RUN_RETRIES = Counter(
    "portal_run_retries",
    "Run attempts that failed with a retryable error and were scheduled again.",
)
STEP_DURATION = Histogram(
    "portal_step_duration_seconds",
    "Finished step attempts, by step type, application and status.",
    ["type", "application", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# --- Rate budgets -----------------------------------------------------------------------------

RATE_BUDGET_WAITS = Counter(
    "portal_rate_budget_waits",
    "Requests to an application that waited for the next window of its rate budget.",
    ["application"],
)
RATE_BUDGET_WAIT_SECONDS = Counter(
    "portal_rate_budget_wait_seconds",
    "Time spent waiting for the next window of a rate budget.",
    ["application"],
)
RATE_BUDGET_EXHAUSTED = Counter(
    "portal_rate_budget_exhausted",
    "Requests given up (retried later) because the budget's next window was too far away.",
    ["application"],
)

# Series that exist from the start read 0 instead of missing, so rate() works at once.
for _duplicate in ("false", "true"):
    DELIVERIES_ACCEPTED.labels(_duplicate)
for _reason in REJECTION_REASONS.values():
    DELIVERIES_REJECTED.labels(_reason)


def count_delivery(status: int) -> None:
    """Count one answered webhook delivery by the status it got (202 accepted, 200
    duplicate, anything else refused)."""
    if status == 202:
        DELIVERIES_ACCEPTED.labels("false").inc()
    elif status == 200:
        DELIVERIES_ACCEPTED.labels("true").inc()
    else:
        DELIVERIES_REJECTED.labels(REJECTION_REASONS.get(status, "other")).inc()


class DeliveryCountingMiddleware:
    """Counts every answer to a webhook delivery (``/hooks/...``): intake's own, and the
    refusals that middleware gives before intake (a body over ``PORTAL_MAX_REQUEST_BYTES``,
    a header nothing can store). First in ``MIDDLEWARE``, so it sees them all."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path_info.startswith(WEBHOOK_PATH):
            count_delivery(response.status_code)
        return response


def run_ended(status: str, *, started_at: datetime | None, finished_at: datetime | None) -> None:
    """Record a run's outcome: ``succeeded`` or ``failed`` (with its duration), or
    ``retrying`` (counted as a retry)."""
    if status == "retrying":
        RUN_RETRIES.inc()
        return
    if started_at is not None and finished_at is not None:
        seconds = max(0.0, (finished_at - started_at).total_seconds())
        RUN_DURATION.labels(status).observe(seconds)


def step_ended(step: dict, *, status: str, duration_ms: int | None) -> None:
    """Record one finished attempt of ``step`` (its definition) that took ``duration_ms``."""
    if duration_ms is None:
        return
    STEP_DURATION.labels(step.get("type", ""), step.get("application", "") or "", status).observe(
        duration_ms / 1000
    )


def rate_budget_waited(key: str, seconds: float) -> None:
    """Record a wait of ``seconds`` for the rate budget ``key`` (``<application>...``)."""
    application = _application(key)
    RATE_BUDGET_WAITS.labels(application).inc()
    RATE_BUDGET_WAIT_SECONDS.labels(application).inc(seconds)


def rate_budget_exhausted(key: str) -> None:
    """Record a request given up because the budget ``key`` is used up for too long."""
    RATE_BUDGET_EXHAUSTED.labels(_application(key)).inc()


def _application(key: str) -> str:
    # Budget keys are "<application>:<credential>"; a series per credential would be too many.
    return key.split(":", 1)[0][:40]
