"""A per-token request budget over a rolling minute (Calendly's, GitHub's per hour scaled).

A sliding log (one timestamp per counted request) rather than fixed windows: a client that
bursts at a window boundary must still be refused, and ``X-RateLimit-Reset`` then says exactly
when the oldest counted request leaves the minute. Not thread-safe on its own; the store calls
it under its lock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class RateStatus:
    """The budget after one request: whether it was allowed and the headers that say so."""

    limit: int
    remaining: int
    reset: int  # whole seconds until the oldest counted request leaves the window
    allowed: bool

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset)
        return headers


class RateLimiter:
    """Counts requests per key (the bearer token) within the last minute."""

    def __init__(self) -> None:
        self._log: dict[str, deque[float]] = {}

    def clear(self) -> None:
        self._log.clear()

    def _window(self, key: str, now: float) -> deque[float]:
        log = self._log.setdefault(key, deque())
        while log and log[0] <= now - WINDOW_SECONDS:
            log.popleft()
        return log

    def _reset(self, log: deque[float], now: float) -> int:
        if not log:
            return int(WINDOW_SECONDS)
        return max(1, math.ceil(log[0] + WINDOW_SECONDS - now))

    def consume(self, key: str, limit: int, now: float) -> RateStatus:
        """Count one request if the budget allows it; refused requests are not counted."""
        log = self._window(key, now)
        if len(log) >= limit:
            return RateStatus(limit, 0, self._reset(log, now), allowed=False)
        log.append(now)
        return RateStatus(limit, limit - len(log), self._reset(log, now), allowed=True)

    def peek(self, key: str, limit: int, now: float) -> RateStatus:
        """The current budget without counting a request (for injected faults)."""
        log = self._window(key, now)
        return RateStatus(limit, max(0, limit - len(log)), self._reset(log, now), allowed=True)
