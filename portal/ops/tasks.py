"""The health task, executed by workers on the ``maintenance`` queue."""

from __future__ import annotations

import secrets

from celery import shared_task

from portal.ops.models import Heartbeat

KEEP_HEARTBEATS = 100


@shared_task(name="portal.health", bind=True)
def health(self, nonce: str | None = None) -> str:
    """Record that a worker ran a task against the database; keep only recent records."""
    nonce = nonce or secrets.token_hex(16)
    Heartbeat.objects.get_or_create(nonce=nonce, defaults={"worker": self.request.hostname or "?"})
    stale = Heartbeat.objects.values_list("pk", flat=True)[KEEP_HEARTBEATS:]
    Heartbeat.objects.filter(pk__in=list(stale)).delete()
    return nonce
