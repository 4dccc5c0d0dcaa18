"""Waking the agents of a group that wait in a long-poll, when work is queued for it.

With Redis (``REDIS_URL``) each queued run or job pushes a token onto the group's list
(``agents:group:<id>:wake``) and a waiting long-poll blocks on it (BLPOP), so it answers
within moments. The wait is cut into short slices all the same: work can also become due
without anyone pushing (a retry's backoff ends, a lease expires), and the database is the
truth. Without Redis (the embedded default) a waiting long-poll re-checks the database
every half second. A Redis outage degrades to that too; it never fails a request.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

#: Without Redis, how often a waiting long-poll looks at the database.
DB_RECHECK_SECONDS = 0.5
#: With Redis, the longest a long-poll blocks before it looks at the database anyway.
REDIS_RECHECK_SECONDS = 2.0
#: Tokens nobody took (no agent was waiting) go away after this.
TOKEN_TTL_SECONDS = 60

_client = None
_client_lock = threading.Lock()


def _key(group_id: int) -> str:
    return f"agents:group:{group_id}:wake"


def _redis():
    global _client
    if not settings.REDIS_URL:
        return None
    with _client_lock:
        if _client is None:
            import redis

            # Its own pool: a blocked BLPOP holds a connection for its whole slice.
            _client = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=2,
                socket_timeout=REDIS_RECHECK_SECONDS + 5,
            )
        return _client


def wake(group_id: int, *, count: int = 1) -> bool:
    """Tell ``count`` waiting long-polls of the group that there is work. Never raises."""
    client = _redis()
    if client is None:
        return True  # waiting long-polls look at the database every half second
    try:
        with client.pipeline() as pipe:
            pipe.lpush(_key(group_id), *["1"] * max(1, count))
            pipe.expire(_key(group_id), TOKEN_TTL_SECONDS)
            pipe.execute()
        return True
    except Exception as error:
        logger.warning("could not wake agent group %s (%s)", group_id, type(error).__name__)
        return False


def wait(group_id: int, seconds: float) -> bool:
    """Block up to ``seconds`` (cut to one re-check slice) or until the group is woken;
    True if this took a wake-up token (a waiter that cannot use it passes it on)."""
    client = _redis()
    if client is None:
        time.sleep(max(0.0, min(seconds, DB_RECHECK_SECONDS)))
        return False
    slice_ = max(0.05, min(seconds, REDIS_RECHECK_SECONDS))
    try:
        return client.blpop([_key(group_id)], timeout=slice_) is not None
    except Exception as error:
        logger.warning(
            "agent wake-up wait failed (%s); re-checking the database", type(error).__name__
        )
        time.sleep(max(0.0, min(seconds, DB_RECHECK_SECONDS)))
        return False
