"""Login throttling, per account and per client, counted atomically in the database.

Every password check first *reserves* an attempt on two counters, the account's (its
normalised e-mail address) and the client's (its address), each for a fixed window of
``PORTAL_LOGIN_LOCKOUT_SECONDS``. A reservation is one conditional ``UPDATE … SET count =
count + 1 WHERE count < limit``: the database serialises concurrent updates of a row, so the
count and the decision are one step and no more than the limit is ever granted, whatever the
number of web processes or threads. Only a granted attempt gets its password checked. A
correct password clears the account's counter and gives the client its reservation back, so
in effect both count failures; a refused attempt counts nothing.

The counters live in the database rather than the cache because the database is the one
store that is shared and atomic in both modes: PostgreSQL in production, SQLite (one file,
writes serialised) in the embedded mode, which has no Redis. One code path for both.

Guessing does not get cheaper by spreading attempts over many accounts (client limit) or over
many addresses (account limit). Accounts that do not exist are counted like any other, so
the answers tell nothing about which addresses have accounts.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from portal.accounts.models import LoginAttempts

# Set on the request by a refused reservation, so the page that asked can answer 429.
_LOCKED_ATTRIBUTE = "_portal_login_locked_seconds"


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


def _key(kind: str, value: str) -> str:
    # Hashed: the table never holds e-mail addresses, and any client string fits the column.
    return f"{kind}:{hashlib.sha256(value.strip().lower().encode()).hexdigest()}"


def account_key(email: str) -> str:
    return _key("account", email)


def client_key(ip: str) -> str:
    return _key("client", ip)


def reserve(key: str, *, limit: int, window: int) -> int:
    """Reserve one attempt on the counter ``key``; 0 if granted, else seconds to wait.

    At most ``limit`` reservations are granted per window of ``window`` seconds, however many
    callers race: each step is a single statement whose condition the database evaluates on
    the row it locks for the update.
    """
    rows = LoginAttempts.objects.filter(key=key)
    for _ in range(5):
        now = timezone.now()
        # A window running with room left: take a place in it.
        if rows.filter(window_ends_at__gt=now, count__lt=limit).update(count=F("count") + 1):
            return 0
        # A window that has ended: whoever updates it first starts the next one.
        if limit > 0 and rows.filter(window_ends_at__lte=now).update(
            count=1, window_ends_at=now + timedelta(seconds=window)
        ):
            return 0
        row = rows.values_list("count", "window_ends_at").first()
        if row is None:
            if limit <= 0:
                return window
            try:
                with transaction.atomic():
                    LoginAttempts.objects.create(
                        key=key, count=1, window_ends_at=now + timedelta(seconds=window)
                    )
            except IntegrityError:
                continue  # another request created it first: take a place in its window
            # Counters of ended windows are of no use; new keys are when the table grows.
            LoginAttempts.objects.filter(window_ends_at__lt=now).delete()
            return 0
        count, ends = row
        if ends > now and count >= limit:
            return max(1, math.ceil((ends - now).total_seconds()))
        # Someone else started a window or freed a place between two statements: again.
    return window


def release(key: str) -> None:
    """Give back one reservation on ``key`` (its attempt was not a failure)."""
    LoginAttempts.objects.filter(key=key, count__gt=0).update(count=F("count") - 1)


def begin_attempt(request: HttpRequest | None, *, email: str) -> int:
    """Reserve an attempt at ``email``'s password for the client of ``request``.

    Returns 0 when the password may be checked now, else the seconds until it may (and marks
    ``request`` so that ``locked_seconds`` tells the page that asked).
    """
    window = settings.PORTAL_LOGIN_LOCKOUT_SECONDS
    account = account_key(email)
    wait = reserve(account, limit=settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT, window=window)
    if not wait and request is not None:
        wait = reserve(
            client_key(client_ip(request)),
            limit=settings.PORTAL_LOGIN_MAX_FAILURES_PER_CLIENT,
            window=window,
        )
        if wait:
            release(account)
    if wait and request is not None:
        setattr(request, _LOCKED_ATTRIBUTE, wait)
    return wait


def attempt_succeeded(request: HttpRequest | None, *, email: str) -> None:
    """A correct password clears the account's counter and releases the client's attempt."""
    LoginAttempts.objects.filter(key=account_key(email)).delete()
    if request is not None:
        release(client_key(client_ip(request)))


def locked_seconds(request: HttpRequest) -> int:
    """Seconds to wait if a password check for this request was refused; 0 otherwise."""
    return getattr(request, _LOCKED_ATTRIBUTE, 0)


def lockout_message(wait: int, *, what: str) -> str:
    """'Too many failed <what> attempts. Try again in N minutes.'"""
    minutes = max(1, math.ceil(wait / 60))
    return (
        f"Too many failed {what} attempts. Try again in {minutes} minute"
        f"{'s' if minutes != 1 else ''}."
    )


def too_many_requests(request: HttpRequest, response):
    """Turn ``response`` into a 429 with Retry-After when the request's attempt was refused."""
    wait = locked_seconds(request)
    if wait:
        response.status_code = 429
        response["Retry-After"] = str(wait)
    return response
