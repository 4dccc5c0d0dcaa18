"""A run's steps in order: resumed where an earlier attempt stopped, each one recorded.

Leases, queues and retries belong to the host; this is what every host does the same way:
actions that succeeded in an earlier attempt are not sent again (their stored, redacted
answer is what later steps read), map steps are computed again, each action is sent with
an idempotency key made of the run's and the step's names, and every record the host gets
is already redacted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .host import Host
from .records import FAILED, RUNNING, SUCCEEDED, StepRecord
from .redaction import redact
from .steps import StepFailed, is_action, run_step

logger = logging.getLogger(__name__)

LOST = "lost"


@dataclass(frozen=True)
class RunResult:
    """How a run's attempt ended: ``succeeded`` (with its redacted ``output``), ``failed``
    (``failure`` says whether trying again may help; ``error`` is its redacted message) or
    ``lost`` (the host no longer held the run; nothing more may be written)."""

    status: str
    output: Any = None
    error: str = ""
    failure: StepFailed | None = None
    step: str = ""


def execute_steps(
    definition: Mapping[str, Any],
    trigger: Any,
    *,
    host: Host,
    previous: Mapping[int, StepRecord] | None = None,
    idempotency_prefix: str,
    purpose: str,
) -> RunResult:
    """Run ``definition``'s steps for the ``trigger`` document, through ``host``.

    ``previous`` holds the records of an earlier attempt of the same run, by position.
    ``purpose`` says in audit trails and logs which run this is.
    """
    previous = previous or {}
    # The unredacted documents exist only here, in the host's memory, for this attempt.
    context: dict[str, Any] = {"trigger": trigger, "steps": {}}
    secrets: set[str] = set()
    output: Any = {}
    for position, step in enumerate(definition.get("steps", [])):
        name, action = step["name"], is_action(step)
        record = previous.get(position) or StepRecord(position=position, name=name)
        if action and record.status == SUCCEEDED:
            context["steps"][name] = output = record.output
            continue
        started = time.monotonic()
        record.status = RUNNING
        record.started_at = host.now()
        record.attempts += 1
        if action:
            if not host.hold():
                return RunResult(status=LOST)
            host.record_step(record)  # shown as running while the application is called
        try:
            output, summary = run_step(
                step, context, host=host, idempotency_key=f"{idempotency_prefix}:{name}",
                purpose=purpose, secrets=secrets,
            )  # fmt: skip
        except StepFailed as failure:
            return _failed(host, record, failure, started, secrets)
        except Exception as error:  # a bug or an outage of the host's own: bounded retries
            logger.exception("%s, step %r failed unexpectedly", purpose, name)
            failure = StepFailed(
                f"The step stopped on an internal error ({type(error).__name__}).",
                retryable=True,
            )
            return _failed(host, record, failure, started, secrets)
        record.status = SUCCEEDED
        record.error = ""
        record.request = redact(summary.get("request", {}), secrets=secrets)
        record.response_status = summary.get("status")
        record.output = redact(output, secrets=secrets)
        _finished(host, record, started)
        context["steps"][name] = output
    final = output if isinstance(output, dict) else {"result": output}
    return RunResult(status=SUCCEEDED, output=redact(final, secrets=secrets))


def _finished(host: Host, record: StepRecord, started: float) -> None:
    record.duration_ms = int((time.monotonic() - started) * 1000)
    record.finished_at = host.now()
    host.record_step(record)


def _failed(host: Host, record: StepRecord, failure: StepFailed, started, secrets) -> RunResult:
    record.status = FAILED
    record.error = redact(str(failure), secrets=secrets)
    record.request = redact(failure.request, secrets=secrets)
    record.response_status = failure.status
    _finished(host, record, started)
    return RunResult(
        status=FAILED,
        error=redact(f"Step {record.name!r}: {failure}", secrets=secrets),
        failure=failure,
        step=record.name,
    )
