"""Reachability checks of the portal's parts, for ``/healthz`` and operators."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from django.db import connection
from django.utils import timezone

from portal.celery import app
from portal.ops.models import Heartbeat

logger = logging.getLogger(__name__)


@dataclass
class Check:
    ok: bool
    detail: str
    ms: float


def _timed(func) -> Check:
    started = time.perf_counter()
    try:
        ok, detail = func()
    except Exception as error:  # a health check reports failures, it does not raise them
        # The page is public: name the failure, keep hosts and messages in the log only.
        logger.warning("health check %s failed: %s", func.__qualname__, error)
        ok, detail = False, type(error).__name__
    return Check(ok=ok, detail=detail, ms=round((time.perf_counter() - started) * 1000, 1))


def check_database() -> Check:
    def probe():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, connection.vendor

    return _timed(probe)


def check_broker() -> Check:
    def probe():
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            return True, urlsplit(app.conf.broker_url).scheme

    return _timed(probe)


def check_workers(timeout: float = 1.0) -> Check:
    def probe():
        replies = app.control.ping(timeout=timeout) or []
        count = len(replies)
        return count > 0, f"{count} worker{'s' if count != 1 else ''} answered"

    return _timed(probe)


def last_heartbeat_age() -> float | None:
    """Seconds since a worker last ran ``portal.health``, or None if never."""
    latest = Heartbeat.objects.order_by("-created_at").values_list("created_at", flat=True)[:1]
    return (timezone.now() - latest[0]).total_seconds() if latest else None


def report() -> dict:
    """All checks; ``status`` is ``ok``, ``degraded`` (no worker or broker) or ``down``."""
    database = check_database()
    broker = check_broker()
    workers = check_workers() if broker.ok else Check(False, "broker unreachable", 0.0)
    age = last_heartbeat_age() if database.ok else None
    if not database.ok:
        status = "down"
    elif broker.ok and workers.ok:
        status = "ok"
    else:
        status = "degraded"
    return {
        "status": status,
        "checks": {
            "database": asdict(database),
            "broker": asdict(broker),
            "workers": asdict(workers),
        },
        "last_heartbeat_seconds_ago": round(age, 1) if age is not None else None,
    }
