"""Counters shared by every web process and worker, kept in the cache (Redis in production).

Rate budgets and the cap on stored webhook refusals count in fixed windows here. Redis
increments atomically; the embedded file cache's read-modify-write does not, so there a file
lock makes the processes of one machine count one at a time.
"""

from __future__ import annotations

import contextlib
import fcntl

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache


def increment(key: str, *, timeout: int) -> int:
    """Add one to the counter ``key`` (created at 0, living ``timeout`` seconds); returns
    the new value. Raises what the cache raises when it is unavailable."""
    while True:
        with _one_at_a_time():
            cache.add(key, 0, timeout=timeout)
            try:
                return cache.incr(key)
            except ValueError:  # expired between add and incr: count in a fresh one
                continue


@contextlib.contextmanager
def _one_at_a_time():
    if isinstance(cache, RedisCache) or isinstance(getattr(cache, "_cache", None), RedisCache):
        yield
        return
    lock_path = settings.VAR_DIR / "counters.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
