"""What observability adds to each event: the counters and log lines on its way, in µs.

Measures, in one process with no database or network, the work a delivery and its run now do
for ``/metrics`` and the logs: counting the delivery (one multiprocess counter), the intake's
log line with the request and event ids (plain and JSON, written to /dev/null), the request
id middleware, binding ids while the relay publishes, and observing a run's and a step's
duration (histograms). Compare with an accepted delivery's cost on this machine
(``webhook_intake.py``: about 1,200 µs of CPU at 800 events/s on two cores).

Metric files go to a temporary ``PROMETHEUS_MULTIPROC_DIR`` (removed afterwards).

    .venv/bin/python benchmarks/observability_overhead.py [-n 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def per_call_us(function, n: int) -> float:
    """Median of five timings of ``n`` calls, per call, in microseconds."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            function()
        timings.append((time.perf_counter() - started) / n * 1e6)
    return round(sorted(timings)[2], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="calls per timing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="portal-metrics-bench-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    try:
        import django

        django.setup()
        from django.http import HttpResponse
        from django.test import RequestFactory

        from portal.ops import logcontext, metrics

        def logger_to_devnull(formatter: logging.Formatter) -> logging.Logger:
            handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
            handler.setFormatter(formatter)
            handler.addFilter(logcontext.ContextFilter())
            logger = logging.getLogger(f"bench.{type(formatter).__name__}")
            logger.handlers, logger.propagate = [handler], False
            logger.setLevel(logging.INFO)
            return logger

        plain = logger_to_devnull(logcontext.PlainFormatter())
        as_json = logger_to_devnull(logcontext.JsonFormatter())
        middleware = logcontext.RequestIdMiddleware(lambda request: HttpResponse(status=202))
        request = RequestFactory().post("/hooks/x/", HTTP_X_REQUEST_ID="bench-request-1")
        start = datetime.now(UTC)
        end = start + timedelta(seconds=0.2)
        step = {"type": "action", "application": "rest"}

        def log_line(logger):
            def write():
                with logcontext.bound(request_id="bench-request-1"):
                    logger.info("webhook delivery accepted", extra={"event_id": 4711})

            return write

        def bind_for_publish():
            with logcontext.bound(event_id=4711, request_id="bench-request-1"):
                pass

        figures = {
            "count_delivery_us": per_call_us(lambda: metrics.count_delivery(202), args.n),
            "intake_log_line_plain_us": per_call_us(log_line(plain), args.n),
            "intake_log_line_json_us": per_call_us(log_line(as_json), args.n),
            "request_id_middleware_us": per_call_us(lambda: middleware(request), args.n),
            "bind_ids_for_publish_us": per_call_us(bind_for_publish, args.n),
            "run_duration_observe_us": per_call_us(
                lambda: metrics.run_ended("succeeded", started_at=start, finished_at=end), args.n
            ),
            "step_duration_observe_us": per_call_us(
                lambda: metrics.step_ended(step, status="succeeded", duration_ms=12), args.n
            ),
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:32} {value:8.2f}")


if __name__ == "__main__":
    main()
