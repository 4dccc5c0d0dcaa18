"""A run's steps in order: resumed where an earlier attempt stopped, each one recorded.

Leases, queues and retries belong to the host; this is what every host does the same way:
actions that succeeded in an earlier attempt are not sent again (their stored, redacted
answer is what later steps read), map steps are computed again, each action is sent with
an idempotency key made of the run's and the step's names, and every record the host gets
is already redacted.

Between an application's answer and its record the host may be killed: the next attempt
then sends the action again, with the same idempotency key. The window is as narrow as
the design allows: the record saying "running, sent with key K" is handed to the host
*before* the call (a host must store it before returning, not batch it), and the success
record right after the answer, before anything else. A destination that honours
``Idempotency-Key`` sees one call; another may see two (README, "Delivery guarantees").
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
        key = f"{idempotency_prefix}:{name}" if action else ""
        if action and position in previous and record.status == RUNNING:
            logger.warning(
                "%s, step %r: an earlier attempt stopped while calling the application, "
                "which may have received it; sending it again with Idempotency-Key %s",
                purpose, name, key,
            )  # fmt: skip
        started = time.monotonic()
        record.status = RUNNING
        record.started_at = host.now()
        record.attempts += 1
        if action:
            if not host.hold():
                return RunResult(status=LOST)
            # Stored before the call: whoever takes the run over knows a call may have gone
            # out, and with which key.
            record.request = {"idempotency_key": key}
            host.record_step(record)
        try:
            output, summary = run_step(
                step, context, host=host, idempotency_key=key, purpose=purpose, secrets=secrets
            )
        except StepFailed as failure:
            return _failed(host, record, failure, started, secrets, key)
        except Exception as error:  # a bug or an outage of the host's own: bounded retries
            logger.exception("%s, step %r failed unexpectedly", purpose, name)
            failure = StepFailed(
                f"The step stopped on an internal error ({type(error).__name__}).",
                retryable=True,
            )
            return _failed(host, record, failure, started, secrets, key)
        record.status = SUCCEEDED
        record.error = ""
        record.request = _with_key(redact(summary.get("request", {}), secrets=secrets), key)
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


def _with_key(request: dict, key: str) -> dict:
    return {**request, "idempotency_key": key} if key else request


def _failed(host: Host, record: StepRecord, failure: StepFailed, started, secrets,
            key: str) -> RunResult:  # fmt: skip
    record.status = FAILED
    record.error = redact(str(failure), secrets=secrets)
    record.request = _with_key(redact(failure.request, secrets=secrets), key)
    record.response_status = failure.status
    _finished(host, record, started)
    return RunResult(
        status=FAILED,
        error=redact(f"Step {record.name!r}: {failure}", secrets=secrets),
        failure=failure,
        step=record.name,
    )
