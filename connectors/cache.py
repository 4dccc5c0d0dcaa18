"""The cache hook for resource-function lookups (``~{GetOrganizationUrl}~`` and the like).

A cache is anything with ``get(key) -> value | None`` and ``set(key, value, ttl)``; the portal
may pass its Redis cache through a thin adapter. ``TTLCache`` is the in-process default: small,
thread-safe, entries expire after their TTL and the oldest are evicted beyond ``max_entries``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Cache(Protocol):
    """Get/set with a time-to-live in seconds; ``get`` returns None for a miss."""

    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any, ttl: float) -> None: ...


class TTLCache:
    """An in-memory cache whose entries expire ``ttl`` seconds after they were set."""

    def __init__(
        self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires <= self._clock():
                del self._entries[key]
                return None
            return value

    def set(self, key: str, value: Any, ttl: float) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: The process-wide default used when a Runtime names no cache.
DEFAULT_CACHE = TTLCache()
