"""What the flow engine itself costs per step, with no network and no database.

Runs a definition of map steps (each mapping a few fields from the trigger and the step
before, as flows do) through ``flows.execute_steps`` with a host that keeps records in a
list, so the figure is the engine's own work: templating, redaction of every record and the
run loop. A real step adds its connector call (milliseconds) and the host's writes.

    .venv/bin/python benchmarks/engine_steps.py [--runs 2000] [--steps 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

import flows


class ListHost:
    """The smallest host: no credentials (map steps need none), records kept in a list."""

    def __init__(self):
        self.records: list[flows.StepRecord] = []

    def open_credential(self, ref, *, application, purpose):  # pragma: no cover - unused
        raise flows.CredentialUnavailable("map steps open no credential")

    def runtime(self, app):  # pragma: no cover - unused
        raise NotImplementedError

    def callback_target(self, app, url):  # pragma: no cover - unused
        return None

    def now(self):
        return datetime.now(UTC)

    def hold(self) -> bool:
        return True

    def record_step(self, record: flows.StepRecord) -> None:
        self.records.append(record)


def definition(steps: int) -> dict:
    chain = [
        {
            "name": "s0",
            "type": "map",
            "mapping": {
                "email": "{{ trigger.payload.email }}",
                "name": "{{ trigger.payload.name }}",
                "note": "Booked by {{ trigger.payload.name }} <{{ trigger.payload.email }}>",
                "api_token": "{{ trigger.payload.token }}",
            },
        }
    ]
    for index in range(1, steps):
        previous = f"s{index - 1}"
        chain.append(
            {
                "name": f"s{index}",
                "type": "map",
                "mapping": {
                    "email": f"{{{{ steps.{previous}.email }}}}",
                    "name": f"{{{{ steps.{previous}.name }}}}",
                    "note": f"{{{{ steps.{previous}.note }}}}",
                    "step": str(index),
                },
            }
        )
    return {"steps": chain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    flow = definition(args.steps)
    trigger = {
        "event": "invitee.created",
        "payload": {"email": "ada@example.com", "name": "Ada", "token": "tok-0123456789abcdef"},
    }
    for _ in range(100):  # warm-up
        flows.execute_steps(flow, trigger, host=ListHost(), idempotency_prefix="w", purpose="w")
    timings = []
    for number in range(args.runs):
        host = ListHost()
        started = time.perf_counter_ns()
        result = flows.execute_steps(
            flow, trigger, host=host, idempotency_prefix=f"run-{number}", purpose="bench"
        )
        timings.append((time.perf_counter_ns() - started) / 1000)
        assert result.status == "succeeded", result.error
    timings.sort()
    per_step = [t / args.steps for t in timings]
    figures = {
        "runs": args.runs,
        "steps_per_run": args.steps,
        "run_p50_us": round(timings[len(timings) // 2], 1),
        "run_p95_us": round(timings[int(len(timings) * 0.95)], 1),
        "step_p50_us": round(per_step[len(per_step) // 2], 1),
        "runs_per_second": round(1e6 / (sum(timings) / len(timings))),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.runs} runs of {args.steps} map steps through flows.execute_steps:")
    print(f"  run  p50 {figures['run_p50_us']} µs, p95 {figures['run_p95_us']} µs")
    print(f"  step p50 {figures['step_p50_us']} µs")
    print(f"  {figures['runs_per_second']} runs/s on one core, engine only")


if __name__ == "__main__":
    main()
