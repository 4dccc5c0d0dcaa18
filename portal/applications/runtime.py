"""How the portal calls applications: one ``connectors.Runtime`` per application, from the
settings, with the budget and cache that every web process and worker share. Where an
application is (``<APP>_API_BASE_URL``) the connectors read from the environment themselves."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache
from django.utils.crypto import salted_hmac

import connectors
from portal.applications.ratebudget import SharedRateBudget


class _SharedCache:
    """Resource-function results (organization URIs and the like, never secrets) in the
    Django cache, so every web process and worker shares one lookup per credential."""

    def get(self, key: str) -> Any | None:
        return django_cache.get(key)

    def set(self, key: str, value: Any, ttl: float) -> None:
        django_cache.set(key, value, timeout=max(1, int(ttl)))


@functools.cache
def _budget(name: str, per_minute: int) -> SharedRateBudget:
    return SharedRateBudget(per_minute)


def fingerprint_key() -> bytes:
    """The key of credential fingerprints in cache keys, the same in every web process and
    worker (they share the cache), derived from SECRET_KEY: someone who can list Redis's keys
    cannot confirm a guessed token by hashing it."""
    return salted_hmac("portal.vault.applications.fingerprint_key", "v1").digest()


def runtime(app: connectors.Connector, *, interactive: bool = False) -> connectors.Runtime:
    """The connectors Runtime for ``app``, configured from the settings.

    ``interactive``: someone is waiting for the answer (the Validate button), so the call
    gives up sooner (one retry, a shorter read timeout) rather than outlast the web server's
    request timeout; workers keep the full patience.
    """
    read_timeout = settings.PORTAL_CONNECTOR_READ_TIMEOUT
    if interactive:
        read_timeout = min(read_timeout, settings.PORTAL_INTERACTIVE_READ_TIMEOUT)
    # Base URLs are the connectors' own business: ``<APP>_API_BASE_URL`` in the environment
    # (read by the connector on every call) points any application elsewhere.
    per_minute = app.rate_limit_per_minute
    return connectors.Runtime(
        rate_limiter=_budget(app.name, per_minute) if per_minute else connectors.Unlimited(),
        cache=_SharedCache(),
        allowed_private_hosts=frozenset(settings.PORTAL_ALLOWED_PRIVATE_HOSTS),
        connect_timeout=settings.PORTAL_CONNECTOR_CONNECT_TIMEOUT,
        read_timeout=read_timeout,
        max_retries=1 if interactive else connectors.Runtime.max_retries,
        fingerprint_key=fingerprint_key(),
    )
