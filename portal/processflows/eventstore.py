"""The two database operations of webhook intake, kept as cheap as the guarantees allow.

Intake is the hottest path of the portal (Calendly retries, bursts of bookings), so these
two operations bypass the ORM's query compilation, which cost more than the database work:

- :func:`find_deployment` reads, in one statement, what intake needs about the deployed
  processflow behind a Processflow URL;
- :func:`store_delivery` stores an event and its outbox entry atomically, or counts a
  duplicate. On PostgreSQL that is one statement (an upsert feeding the outbox insert), so
  the delivery costs one round trip and one commit; elsewhere (SQLite) it is the ORM in a
  transaction, with the same outcome.

Everything else about events goes through the models as usual.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from portal.processflows.models import Deployment, Outbox, TriggerEvent
from portal.vault.models import DataKey

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
WITH event AS (
    INSERT INTO processflows_triggerevent
           (organization_id, deployment_id, source, event_name, dedupe_key, headers, body,
            received_at, duplicates)
    VALUES (%s, %s, 'webhook', %s, %s, %s, %s, now(), 0)
    ON CONFLICT (deployment_id, dedupe_key)
    DO UPDATE SET duplicates = processflows_triggerevent.duplicates + 1
    RETURNING id, xmax = 0 AS inserted
)
INSERT INTO processflows_outbox (event_id, created_at, publish_attempts)
SELECT id, now(), 0 FROM event WHERE inserted
RETURNING event_id
"""


@dataclass(frozen=True, slots=True)
class DeployedHook:
    """What intake knows about the deployment behind a Processflow URL."""

    deployment: Deployment
    application: str


def find_deployment(hook_id: str) -> DeployedHook | None:
    """The active deployment of the triggered processflow with ``hook_id``, or None.

    The returned ``Deployment`` carries its signing key's ciphertext and data key (enough
    to verify a delivery) and is not meant to be saved.
    """
    with connection.cursor() as cursor:
        cursor.execute(_FIND, [hook_id])
        row = cursor.fetchone()
    if row is None:
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
    return DeployedHook(deployment, definition["trigger"]["application"])


def _aware(value):
    """SQLite hands back naive text where PostgreSQL gives an aware datetime."""
    from django.db.models import DateTimeField

    if isinstance(value, str):
        return DateTimeField().to_python(value)
    return value


def store_delivery(
    deployment: Deployment, *, dedupe_key: str, event_name: str, headers: dict, body: bytes
) -> int | None:
    """Store an accepted delivery and its outbox entry atomically; the new event's id, or
    None if this is a redelivery of an event already stored (its duplicate count grows)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _STORE_POSTGRESQL,
                [
                    deployment.organization_id, deployment.pk, event_name, dedupe_key,
                    json.dumps(headers), body,
                ],
            )  # fmt: skip
            row = cursor.fetchone()
        return row[0] if row else None
    try:
        with transaction.atomic():
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
        counted = TriggerEvent.objects.filter(
            deployment_id=deployment.pk, dedupe_key=dedupe_key
        ).update(duplicates=F("duplicates") + 1)
        if not counted:
            raise  # not a duplicate (the deployment was deleted meanwhile): nothing stored
        return None
    return event.pk
