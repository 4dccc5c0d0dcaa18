"""Outbound rate budgets: the hook the HTTP layer calls before every request.

A rate limiter is anything with ``acquire(key: str) -> None``: it returns when one request for
``key`` may go out, waiting if needed, and raises when the caller should give up (raise
``connectors.errors.RateLimited``; any exception with a numeric ``wait`` attribute is turned
into one). The portal passes a Redis-backed limiter shared by all workers; ``TokenBucket`` is
the in-process one, used by default with the connector's declared budget
(``Connector.rate_limit_per_minute``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .errors import RateLimited


@runtime_checkable
class RateLimiter(Protocol):
    """Called before every outbound request with the credential's budget key."""

    def acquire(self, key: str) -> None: ...


class Unlimited:
    """A limiter that never waits (benchmarks, or an API without a budget)."""

    def acquire(self, key: str) -> None:
        return None


class TokenBucket:
    """An in-process token bucket per key: bursts up to ``per_minute``, refills evenly.

    A request that finds the bucket empty reserves the next token and sleeps until it is due,
    so concurrent callers are served in order. If that wait would exceed ``max_wait`` seconds
    the reservation is returned and ``RateLimited`` raised with the wait it would have taken.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst: float | None = None,
        max_wait: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else per_minute)
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated_at)

    def acquire(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            tokens, updated = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.rate) - 1.0
            wait = -tokens / self.rate if tokens < 0 else 0.0
            if wait > self.max_wait:
                raise RateLimited(
                    f"The outbound rate budget for {key} is used up; retry in {wait:.0f} s.",
                    status=429,
                    retry_after=wait,
                )
            self._buckets[key] = (tokens, now)
        if wait > 0:
            self._sleep(wait)


_defaults: dict[tuple[str, float], TokenBucket] = {}
_defaults_lock = threading.Lock()


def default_limiter(connector_name: str, per_minute: float | None) -> RateLimiter:
    """The process-wide bucket for a connector's declared budget (Unlimited without one)."""
    if not per_minute:
        return Unlimited()
    with _defaults_lock:
        key = (connector_name, float(per_minute))
        if key not in _defaults:
            _defaults[key] = TokenBucket(per_minute)
        return _defaults[key]


def acquire(limiter: RateLimiter, key: str) -> None:
    """Call ``limiter.acquire(key)``; a foreign "budget exhausted" error (anything carrying a
    numeric ``wait``) becomes ``RateLimited`` so callers need to know one error type only."""
    try:
        limiter.acquire(key)
    except RateLimited:
        raise
    except Exception as error:
        wait = getattr(error, "wait", None)
        if isinstance(wait, int | float):
            raise RateLimited(
                f"The outbound rate budget is used up; retry in {wait:.0f} s.",
                status=429,
                retry_after=float(wait),
            ) from error
        raise
