"""Outbound rate budgets shared by every web process and worker.

An application allows each credential (often: each user) so many requests per minute.
A per-process limiter would let N workers send N times the budget; this one counts in the
cache, which is Redis in production, with atomic increments per fixed one-minute window.
A caller that would have to wait longer than ``PORTAL_RATE_BUDGET_MAX_WAIT_SECONDS`` gets
an error carrying the wait (the connectors turn it into a retryable ``RateLimited``), so a
run is retried later instead of holding a worker.
"""

from __future__ import annotations

import time

from django.conf import settings

from portal import counters
from portal.ops import metrics


class BudgetExhausted(Exception):
    """The caller would have to wait longer than it is willing to."""

    def __init__(self, key: str, wait: float):
        self.key = key
        self.wait = wait
        super().__init__(f"Rate budget for {key} is used up for the next {wait:.0f} s.")


class SharedRateBudget:
    """``acquire(key)`` takes one request from ``key``'s budget, waiting for the next window
    when this one is used up (up to ``max_wait`` seconds, then :class:`BudgetExhausted`)."""

    def __init__(self, per_minute: int, *, max_wait: float | None = None, window: float = 60.0):
        self.per_minute = per_minute
        self.max_wait = (
            settings.PORTAL_RATE_BUDGET_MAX_WAIT_SECONDS if max_wait is None else max_wait
        )
        self.window = window

    def _window_key(self, key: str, now: float) -> tuple[str, float]:
        start = now - (now % self.window)
        return f"rate-budget:{key}:{int(start)}", start + self.window

    def acquire(self, key: str) -> None:
        deadline = time.time() + self.max_wait
        while True:
            now = time.time()
            bucket, window_end = self._window_key(key, now)
            used = counters.increment(bucket, timeout=int(self.window * 2))
            if used <= self.per_minute:
                return
            if window_end > deadline:
                metrics.rate_budget_exhausted(key)
                raise BudgetExhausted(key, window_end - now)
            wait = max(0.0, window_end - now) + 0.01
            metrics.rate_budget_waited(key, wait)
            time.sleep(wait)
