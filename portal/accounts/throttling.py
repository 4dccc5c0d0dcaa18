"""Login throttling, per account and per client.

Failures are counted in the cache (Redis in production, shared by every web process) for a
fixed window. Either counter over its limit refuses further attempts until the window ends,
before the password is even checked, so guessing does not get cheaper by spreading attempts
over many accounts (client limit) or many addresses (account limit).
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address, trusting X-Forwarded-For only as far as configured proxies go.

    Each trusted proxy appends the address it received the connection from, so the client is
    the entry ``PORTAL_TRUSTED_PROXY_COUNT`` places from the right. Entries further left were
    written by the client and may be forged; with no trusted proxy the header is ignored.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.PORTAL_TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    return hops[-count] if len(hops) >= count else remote


def _account_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"login-fail:account:{digest}"


def _client_key(ip: str) -> str:
    return f"login-fail:client:{ip}"


def _window_key(key: str) -> str:
    return f"{key}:until"


def _count(key: str) -> int:
    return int(cache.get(key) or 0)


def seconds_locked(*, email: str, ip: str) -> int:
    """Seconds until another attempt is allowed for this account or client; 0 if allowed now."""
    limits = (
        (_account_key(email), settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT),
        (_client_key(ip), settings.PORTAL_LOGIN_MAX_FAILURES_PER_CLIENT),
    )
    wait = 0
    for key, limit in limits:
        if _count(key) >= limit:
            until = float(cache.get(_window_key(key)) or 0)
            wait = max(wait, int(until - time.time()) + 1)
    return wait


def record_failure(*, email: str, ip: str) -> None:
    """Count one failed attempt against the account and the client."""
    window = settings.PORTAL_LOGIN_LOCKOUT_SECONDS
    for key in (_account_key(email), _client_key(ip)):
        if cache.add(key, 0, timeout=window):
            cache.set(_window_key(key), time.time() + window, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)
            cache.set(_window_key(key), time.time() + window, timeout=window)


def record_success(*, email: str) -> None:
    """A correct password clears the account's failures (not the client's)."""
    key = _account_key(email)
    cache.delete_many([key, _window_key(key)])
