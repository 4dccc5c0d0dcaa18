"""Secrets that live outside credentials, declared so that key rotation finds them.

A deployment's webhook signing key is encrypted like a credential secret (same data keys,
same binding of ciphertext to its row), but on another app's model. That app registers
where it keeps it; ``rotate_encryption_keys --reencrypt`` then re-encrypts those values too,
and a retired data key is deleted only once nothing refers to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import models

from portal.vault.keys import active_data_key, encrypt_secret


@dataclass(frozen=True)
class SealedSecret:
    """One encrypted column of a tenant-owned model.

    ``data_key_field`` is the foreign key to the ``DataKey`` that encrypts it,
    ``ciphertext_field`` the text column, ``field`` the name bound into the ciphertext and
    ``binding(row)`` the row identity bound into it (what ``keys.encrypt_secret`` was given).
    """

    model: type[models.Model]
    data_key_field: str
    ciphertext_field: str
    field: str
    binding: Callable[[models.Model], str]


_registry: list[SealedSecret] = []


def register(secret: SealedSecret) -> None:
    """Declare an encrypted column (from an app's ``ready()``)."""
    if secret not in _registry:
        _registry.append(secret)


def registered() -> tuple[SealedSecret, ...]:
    return tuple(_registry)


def spec_for(model: type[models.Model]) -> SealedSecret:
    """The registered sealed secret of ``model``; LookupError if it keeps none."""
    for secret in _registry:
        if secret.model is model:
            return secret
    raise LookupError(f"{model.__name__} keeps no registered sealed secret")


def seal_value(instance: models.Model, value: str) -> None:
    """Encrypt ``value`` into ``instance``'s sealed column (not saved) under its
    organization's active data key, bound to the row and the field."""
    spec = spec_for(type(instance))
    data_key = active_data_key(instance.organization)
    setattr(instance, spec.data_key_field, data_key)
    setattr(
        instance,
        spec.ciphertext_field,
        encrypt_secret(data_key, value, binding=spec.binding(instance), field=spec.field),
    )
