"""What the engine reports about each step: a record a host stores as it likes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclass
class StepRecord:
    """One step of a run: what was asked, what came back, how long it took.

    Everything in it is already redacted when the engine hands it to the host (known secret
    values and sensitive keys replaced), so a host may store or send it as it is.
    """

    position: int
    name: str
    status: str = RUNNING
    attempts: int = 0
    request: dict = field(default_factory=dict)
    response_status: int | None = None
    output: Any = field(default_factory=dict)
    error: str = ""
    duration_ms: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
