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
