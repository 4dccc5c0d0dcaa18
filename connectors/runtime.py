"""``Runtime``: the configuration a caller passes to connectors (everything has a default).

The portal builds one from its settings; the CLI from flags; tests with small timeouts.
Nothing here is specific to one connector except ``base_urls``, keyed by connector name.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .cache import DEFAULT_CACHE, Cache
from .netguard import NetworkPolicy
from .ratelimit import RateLimiter

DEFAULT_USER_AGENT = "ConnectPortal-Connectors/1.0 (+https://github.com/connect-portal)"
# This process's own: its in-memory cache is the only one it keys by default.
_PROCESS_FINGERPRINT_KEY = secrets.token_bytes(32)


@dataclass(frozen=True, eq=False)
class Runtime:
    """How connectors execute: where, how patiently, and with which shared services.

    ``base_urls``           connector name -> base URL, overriding the connector's own default
                            and its environment variable (e.g. ``{"calendly": sandbox.url}``).
    ``connect_timeout``,    seconds for connecting and for each read; every request has both.
    ``read_timeout``
    ``max_retries``         extra attempts after a 429, a 5xx or a connection failure (the
                            latter two only when the request is safe to repeat).
    ``backoff_base``,       exponential backoff with full jitter: attempt n waits a random
    ``backoff_cap``         time up to ``min(cap, base * 2**(n-1))`` seconds.
    ``max_retry_wait``      the longest wait a server may ask for (Retry-After,
                            X-RateLimit-Reset) that is honoured in place; longer asks raise
                            ``RateLimited``/``ApiError`` carrying ``retry_after``.
    ``rate_limiter``        ``acquire(key)`` before every request; None: an in-process token
                            bucket per connector with its declared budget.
    ``cache``, ``cache_ttl`` where resource-function results are kept, and for how long.
    ``allowed_private_hosts`` host names, addresses or CIDRs the REST connector may reach
                            although they are not public (tests, on-premises destinations).
    ``max_pages``           safety cap on pages fetched by one paginated action.
    ``max_response_bytes``  larger answers raise ``InvalidResponse`` instead of filling memory.
    ``reuse_connections``   keep connections open across credential uses in this process
                            (pooled per network policy; sessions and cookies stay per use).
    ``trust_env``           honour HTTP(S)_PROXY and .netrc from the environment. Off: .netrc
                            could replace a connector's Authorization header. Never applied to
                            destinations under the network policy.
    ``sleep``               how backoff waits (tests record the waits instead of sleeping).
    ``fingerprint_key``     the secret that keys credential fingerprints in cache keys
                            (``Credentials.fingerprint``); random per process unless given.
                            Processes that share a cache share it too.
    """

    base_urls: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    max_retry_wait: float = 30.0
    rate_limiter: RateLimiter | None = None
    cache: Cache = DEFAULT_CACHE
    cache_ttl: float = 300.0
    allowed_private_hosts: Iterable[str] = frozenset()
    max_pages: int = 100
    max_response_bytes: int = 10 * 1024 * 1024
    user_agent: str = DEFAULT_USER_AGENT
    reuse_connections: bool = True
    trust_env: bool = False
    sleep: Callable[[float], None] = time.sleep
    fingerprint_key: bytes = field(default=_PROCESS_FINGERPRINT_KEY, repr=False)
    network_policy: NetworkPolicy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "base_urls", MappingProxyType(dict(self.base_urls)))
        set_(self, "allowed_private_hosts", frozenset(self.allowed_private_hosts))
        set_(self, "network_policy", NetworkPolicy.from_entries(self.allowed_private_hosts))
        for name in ("connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_retries < 0 or self.max_pages < 1:
            raise ValueError("max_retries must be >= 0 and max_pages >= 1")
        if not 16 <= len(self.fingerprint_key) <= 64:
            raise ValueError("fingerprint_key must have 16 to 64 bytes")

    def replace(self, **changes: Any) -> Runtime:
        """A copy with ``changes`` applied (the original is immutable)."""
        values = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if self.__dataclass_fields__[name].init
        }
        values.update(changes)
        return Runtime(**values)


DEFAULT_RUNTIME = Runtime()
