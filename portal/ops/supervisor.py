"""Keeping a few child processes running: what ``manage.py runall`` does for its web server,
worker, scheduler and relay.

A child that exits (a worker that gave up on a lost broker, a crash) is started again after a
backoff (1 s, doubling up to ``max_delay``), and the supervisor says so in its log; a child
that then stays up for ``stable_after`` seconds starts over from the shortest delay. Compose
does the same in production with ``restart: unless-stopped``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    """One supervised command and its current process."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    delay: float = 0.0
    due: float | None = None  # when a child that exited is started again
    history: list[int] = field(default_factory=list)  # exit codes, oldest first


class Supervisor:
    """Starts ``commands`` (name -> argv) and restarts any that exits, until ``stop()``."""

    def __init__(self, commands: dict[str, list[str]], *, cwd: Path | str, env: dict[str, str],
                 log: Callable[[str], None], first_delay: float = 1.0, max_delay: float = 30.0,
                 stable_after: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 ):  # fmt: skip
        self.children = {name: Child(name, command) for name, command in commands.items()}
        self.cwd, self.env, self.log = cwd, env, log
        self.first_delay, self.max_delay, self.stable_after = first_delay, max_delay, stable_after
        self.clock = clock

    def start(self) -> None:
        """Start every child."""
        for child in self.children.values():
            self._spawn(child)

    def check(self) -> None:
        """Notice children that exited and start again those whose backoff has passed; call
        it every fraction of a second."""
        now = self.clock()
        for child in self.children.values():
            if child.due is not None:
                if now >= child.due:
                    child.due = None
                    child.restarts += 1
                    self.log(f"{child.name}: starting again (restart {child.restarts}).")
                    self._spawn(child)
                continue
            if child.process is None or child.process.poll() is None:
                continue
            code = child.process.returncode
            child.history.append(code)
            if now - child.started >= self.stable_after:
                child.delay = 0.0  # it had been running well: this is a new failure
            child.delay = min(self.max_delay, child.delay * 2 if child.delay else self.first_delay)
            child.due = now + child.delay
            self.log(f"{child.name} exited with code {code}; restarting it in {child.delay:g} s.")

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM every running child, SIGKILL those still running after ``grace``."""
        running = [c.process for c in self.children.values() if c.process is not None]
        for process in running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, cwd=self.cwd, env=self.env)  # noqa: S603
        child.started = self.clock()
