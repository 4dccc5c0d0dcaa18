"""The portal's worker and scheduler on a private broker (``tests/redis_server.py``).

``tests.processes.start_worker`` waits for a ping through the test's own broker; these
wait for the process to say it is ready instead.
"""

from __future__ import annotations

import sys
import time

from tests.processes import Process, child_env, output_contains, start


def start_worker(env: dict[str, str], *, concurrency: int = 2) -> Process:
    """A worker as ``runall`` and Compose start it (gossip, mingle and heartbeats on)."""
    args = [
        sys.executable, "-m", "celery", "-A", "portal", "worker",
        "-Q", "intake,actions,maintenance", "-c", str(concurrency),
        "-n", f"private-{time.monotonic_ns()}@%h", "-l", "info",
    ]  # fmt: skip
    return start("worker", args, env=child_env(**env), ready=output_contains(" ready."),
                 what="start consuming")  # fmt: skip


def start_beat(env: dict[str, str]) -> Process:
    """Celery beat: the sweeper every ``PORTAL_SWEEP_SECONDS``."""
    args = [sys.executable, "-m", "celery", "-A", "portal", "beat", "-l", "info"]
    return start("beat", args, env=child_env(**env), ready=output_contains("beat: Starting"),
                 what="start beat")  # fmt: skip
