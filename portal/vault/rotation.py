"""Online key rotation, in small resumable batches.

``rewrap_data_keys`` re-wraps every data key under the primary KEK: afterwards the old KEKs
can be removed from ``PORTAL_ENCRYPTION_KEYS`` without losing anything. ``reencrypt`` also
gives every organization a fresh data key and re-encrypts each secret under it.

Each batch is one short transaction that locks only its own rows (``SKIP LOCKED``), so the
portal keeps serving and writing credentials during a rotation; a row that a request holds
is picked up by a later batch. Interrupted runs resume where they stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from flows import envelope as crypto
from portal.tenancy.models import Organization, TenantOwnedModel, TenantQuerySet
from portal.vault import sealed
from portal.vault.keys import (
    create_data_key,
    data_key_cache,
    decrypt_secret,
    encrypt_secret,
    keyring,
    open_secrets,
    seal_secrets,
)
from portal.vault.models import Credential, CredentialEvent, DataKey, KeyRotation

Progress = Callable[[str], None]
ACTOR = "system: key rotation"


def _every(model: type[TenantOwnedModel]) -> TenantQuerySet:
    """All organizations' rows of ``model``: a rotation re-wraps and re-encrypts them all."""
    return model.objects.unscoped("key rotation re-wraps and re-encrypts every organization")


def _audit(credentials, detail: dict) -> None:
    CredentialEvent.objects.bulk_create(
        CredentialEvent(
            organization_id=c.organization_id,
            credential=c,
            credential_name=c.name,
            application=c.application,
            action=CredentialEvent.Action.KEYS_ROTATED,
            actor_label=ACTOR,
            detail=detail,
        )
        for c in credentials
    )


def rewrap_data_keys(*, batch_size: int = 500, progress: Progress = lambda _: None) -> Counter:
    """Re-wrap every data key not under the primary KEK; returns counts by old KEK id."""
    ring = keyring()
    primary = ring.primary_id
    counts: Counter = Counter()
    remaining = _every(DataKey).exclude(kek_id=primary).count()
    progress(f"Re-wrapping {remaining} data key(s) under {primary!r}.")
    while True:
        with transaction.atomic():
            batch = list(
                _every(DataKey)
                .exclude(kek_id=primary)
                .select_for_update(skip_locked=True)
                .order_by("pk")[:batch_size]
            )
            if not batch:
                if _every(DataKey).exclude(kek_id=primary).exists():
                    time.sleep(0.2)  # rows held by running requests; try again shortly
                    continue
                break
            now = timezone.now()
            for data_key in batch:
                plaintext = crypto.unwrap_data_key(
                    ring, data_key.kek_id, data_key.wrapped_key,
                    organization_id=data_key.organization_id,
                )  # fmt: skip
                counts[data_key.kek_id] += 1
                data_key.kek_id, data_key.wrapped_key = crypto.wrap_data_key(
                    ring, plaintext, organization_id=data_key.organization_id
                )
                data_key.wrapped_at = now
            _every(DataKey).bulk_update(batch, ["kek_id", "wrapped_key", "wrapped_at"])
            affected = _every(Credential).filter(data_key__in=batch)
            _audit(affected, {"rewrapped_under": primary})
        progress(
            f"  re-wrapped {sum(counts.values())}/{remaining} "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})"
        )
    return counts


def _current_rotation() -> KeyRotation:
    return (
        KeyRotation.objects.filter(finished_at__isnull=True).first() or KeyRotation.objects.create()
    )


def _fresh_data_keys(rotation: KeyRotation, progress: Progress) -> int:
    """Give each organization whose active data key predates this rotation a fresh one."""
    fresh = 0
    stale_orgs = Organization.objects.filter(
        Exists(
            DataKey.objects.for_tenant(OuterRef("pk")).filter(
                active=True, created_at__lt=rotation.started_at
            )
        )
    )
    for organization in stale_orgs.iterator():
        with transaction.atomic():
            DataKey.objects.for_tenant(organization).filter(active=True).update(active=False)
            create_data_key(organization)
        fresh += 1
    progress(f"Created {fresh} fresh data key(s).")
    return fresh


def _reencrypt_sealed(secret: sealed.SealedSecret, batch_size: int, progress: Progress) -> int:
    """Re-encrypt one registered column of another app under the fresh data keys."""
    key_field, text_field = secret.data_key_field, secret.ciphertext_field
    stale = (
        _every(secret.model)
        .exclude(**{text_field: ""})
        .exclude(**{key_field: None})
        .exclude(**{f"{key_field}__active": True})
    )
    done = 0
    while True:
        with transaction.atomic():
            batch = list(
                stale.select_related(key_field)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")[:batch_size]
            )
            if not batch:
                if stale.exists():
                    time.sleep(0.2)
                    continue
                break
            for row in batch:
                binding = secret.binding(row)
                value = decrypt_secret(
                    getattr(row, key_field), getattr(row, text_field),
                    binding=binding, field=secret.field,
                )  # fmt: skip
                active = DataKey.objects.for_tenant(row.organization_id).get(active=True)
                setattr(row, key_field, active)
                setattr(
                    row,
                    text_field,
                    encrypt_secret(active, value, binding=binding, field=secret.field),
                )
                del value
            _every(secret.model).bulk_update(batch, [key_field, text_field])
            done += len(batch)
    progress(f"Re-encrypted {done} {secret.model._meta.verbose_name} {secret.field}(s).")
    return done


def _unreferenced(data_keys):
    """Data keys that no credential and no registered secret refers to any more."""
    for relation in DataKey._meta.related_objects:
        data_keys = data_keys.exclude(
            Exists(_every(relation.related_model).filter(**{relation.field.name: OuterRef("pk")}))
        )
    return data_keys


def reencrypt(*, batch_size: int = 500, progress: Progress = lambda _: None) -> Counter:
    """Re-encrypt every secret under its organization's fresh data key (resumable).

    Returns counts of re-encrypted credentials by the KEK id of the data key they left.
    """
    rotation = _current_rotation()
    _fresh_data_keys(rotation, progress)
    stale = _every(Credential).exclude(data_key__active=True)
    remaining = stale.count()
    progress(f"Re-encrypting {remaining} credential(s).")
    counts: Counter = Counter()
    active_keys: dict[int, DataKey] = {}
    while True:
        with transaction.atomic():
            batch = list(
                stale.select_related("data_key")
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")[:batch_size]
            )
            if not batch:
                if stale.exists():
                    time.sleep(0.2)
                    continue
                break
            for credential in batch:
                org_id = credential.organization_id
                if org_id not in active_keys:
                    active_keys[org_id] = DataKey.objects.for_tenant(org_id).get(active=True)
                counts[credential.data_key.kek_id] += 1
                values = open_secrets(credential)
                credential.secret_values = {}
                seal_secrets(credential, values, active_keys[org_id])
                del values
            _every(Credential).bulk_update(batch, ["data_key", "secret_values"])
            _audit(batch, {"reencrypted_under_data_key": "fresh", "kek_id": keyring().primary_id})
        progress(
            f"  re-encrypted {sum(counts.values())}/{remaining} "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})"
        )
    for secret in sealed.registered():
        _reencrypt_sealed(secret, batch_size, progress)
    deleted, _ = _unreferenced(_every(DataKey).filter(active=False)).delete()
    progress(f"Deleted {deleted} retired data key(s).")
    rotation.finished_at = timezone.now()
    rotation.counts = dict(counts)
    rotation.save(update_fields=["finished_at", "counts"])
    data_key_cache.clear()  # the retired keys' plaintext need not stay in memory
    return counts
