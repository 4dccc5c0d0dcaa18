"""The two database operations of webhook intake, kept as cheap as the guarantees allow.

Intake is the hottest path of the portal (applications retry, events come in bursts), so these
two operations bypass the ORM's query compilation, which cost more than the database work:

- :func:`find_deployment` reads, in one statement, what intake needs about the deployed
  processflow behind a Processflow URL. The answer is kept in this process for a short
  while (``CACHE_SECONDS``): it is only a hint, because
- :func:`store_delivery` stores the event and its outbox entry only if the deployment is
  still active, in the same statement. So a flow undeployed a moment ago never gets an
  event from a stale hint; intake then asks again (``fresh=True``) and answers 404. On
  PostgreSQL the whole store is one statement (one round trip, one commit); elsewhere
  (SQLite) it is the ORM in a transaction, with the same outcome.

Everything else about events goes through the models as usual.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from portal.processflows.models import Deployment, Outbox, TriggerEvent
from portal.vault.models import DataKey

CACHE_SECONDS = 30
CACHE_SIZE = 10_000

_FIND = """
SELECT d.id, d.organization_id, d.processflow_id, d.uid, d.signing_key_ciphertext,
       v.definition, k.id, k.organization_id, k.kek_id, k.wrapped_key, k.wrapped_at
  FROM processflows_deployment d
  JOIN processflows_processflow p ON p.id = d.processflow_id
  JOIN processflows_processflowversion v ON v.id = d.version_id
  LEFT JOIN vault_datakey k ON k.id = d.signing_data_key_id
 WHERE p.hook_id = %s AND p.trigger_type = 'webhook' AND d.state = 'active'
"""

_STORE_POSTGRESQL = """
WITH live AS (
    SELECT id, organization_id FROM processflows_deployment WHERE id = %s AND state = 'active'
), event AS (
    INSERT INTO processflows_triggerevent
           (organization_id, deployment_id, source, event_name, dedupe_key, headers, body,
            received_at, duplicates)
    SELECT organization_id, id, 'webhook', %s, %s, %s, %s, now(), 0 FROM live
    ON CONFLICT (deployment_id, dedupe_key)
    DO UPDATE SET duplicates = processflows_triggerevent.duplicates + 1
    RETURNING id, xmax = 0 AS inserted
), outbox AS (
    INSERT INTO processflows_outbox (event_id, created_at, publish_attempts)
    SELECT id, now(), 0 FROM event WHERE inserted
    RETURNING event_id
)
SELECT (SELECT count(*) FROM live), (SELECT event_id FROM outbox)
"""


@dataclass(frozen=True, slots=True)
class DeployedHook:
    """What intake knows about the deployment behind a Processflow URL; ``cached`` says it
    came from this process's memory and may be outdated."""

    deployment: Deployment
    application: str
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of :func:`store_delivery`: ``event_id`` of a new event, None for a
    redelivery of one already stored; ``live`` False when the deployment is no longer
    active (nothing was stored)."""

    event_id: int | None
    live: bool = True


class _HookCache:
    def __init__(self):
        self._items: OrderedDict[str, tuple[float, DeployedHook]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, hook_id: str) -> DeployedHook | None:
        with self._lock:
            item = self._items.get(hook_id)
            if item is None or item[0] < time.monotonic():
                return None
            return item[1]

    def put(self, hook_id: str, hook: DeployedHook) -> None:
        with self._lock:
            self._items[hook_id] = (time.monotonic() + CACHE_SECONDS, hook)
            self._items.move_to_end(hook_id)
            while len(self._items) > CACHE_SIZE:
                self._items.popitem(last=False)

    def forget(self, hook_id: str) -> None:
        with self._lock:
            self._items.pop(hook_id, None)


_cache = _HookCache()


def find_deployment(hook_id: str, *, fresh: bool = False) -> DeployedHook | None:
    """The active deployment of the triggered processflow with ``hook_id``, or None.

    Without ``fresh`` a recent answer may be reused (see the module's docstring). The
    returned ``Deployment`` carries its signing key's ciphertext and data key (enough to
    verify a delivery), never the key itself, and is not meant to be saved.
    """
    if not fresh:
        hook = _cache.get(hook_id)
        if hook is not None:
            return hook
    with connection.cursor() as cursor:
        cursor.execute(_FIND, [hook_id])
        row = cursor.fetchone()
    if row is None:
        _cache.forget(hook_id)
        return None
    (pk, organization_id, processflow_id, uid, ciphertext, definition,
     key_pk, key_org, kek_id, wrapped_key, wrapped_at) = row  # fmt: skip
    if isinstance(definition, str | bytes):
        definition = json.loads(definition)
    if not isinstance(uid, uuid.UUID):
        uid = uuid.UUID(uid)  # SQLite keeps it as 32 hex digits; the signing key binds to it
    data_key = None
    if key_pk is not None:
        data_key = DataKey(
            pk=key_pk,
            organization_id=key_org,
            kek_id=kek_id,
            wrapped_key=bytes(wrapped_key),
            wrapped_at=_aware(wrapped_at),
        )
    deployment = Deployment(
        pk=pk,
        organization_id=organization_id,
        processflow_id=processflow_id,
        uid=uid,
        signing_key_ciphertext=ciphertext,
        signing_data_key=data_key,
        state=Deployment.State.ACTIVE,
    )
    application = definition["trigger"]["application"]
    _cache.put(hook_id, DeployedHook(deployment, application, cached=True))
    return DeployedHook(deployment, application)


def forget(hook_id: str) -> None:
    """Drop what this process remembers about ``hook_id``."""
    _cache.forget(hook_id)


def _aware(value):
    """SQLite hands back naive text where PostgreSQL gives an aware datetime."""
    from django.db.models import DateTimeField

    if isinstance(value, str):
        return DateTimeField().to_python(value)
    return value


def store_delivery(
    deployment: Deployment, *, dedupe_key: str, event_name: str, headers: dict, body: bytes
) -> Stored:
    """Store an accepted delivery and its outbox entry atomically, if the deployment is
    still active; a redelivery of a stored event only counts as a duplicate."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _STORE_POSTGRESQL,
                [deployment.pk, event_name, dedupe_key, json.dumps(headers), body],
            )
            live, event_id = cursor.fetchone()
        return Stored(event_id, live=bool(live))
    try:
        with transaction.atomic():
            deployments = Deployment.objects.for_tenant(deployment.organization_id)
            if not deployments.filter(pk=deployment.pk, state=Deployment.State.ACTIVE).exists():
                return Stored(None, live=False)
            event = TriggerEvent.objects.create(
                organization_id=deployment.organization_id,
                deployment_id=deployment.pk,
                source=TriggerEvent.Source.WEBHOOK,
                event_name=event_name,
                dedupe_key=dedupe_key,
                headers=headers,
                body=body,
            )
            Outbox.objects.create(event=event)
    except IntegrityError:
        counted = (
            TriggerEvent.objects.for_tenant(deployment.organization_id)
            .filter(deployment_id=deployment.pk, dedupe_key=dedupe_key)
            .update(duplicates=F("duplicates") + 1)
        )
        if not counted:
            raise  # not a duplicate (the deployment was deleted meanwhile): nothing stored
        return Stored(None)
    return Stored(event.pk)
