"""The Django side of envelope encryption: the configured key ring, each organization's
active data key, an in-memory cache of unwrapped data keys, and the start-up key check."""

from __future__ import annotations

import base64
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

from django.conf import settings
from django.db import (
    IntegrityError,
    OperationalError,
    ProgrammingError,
    connections,
    router,
    transaction,
)

from flows import envelope as crypto
from portal.tenancy.models import Organization
from portal.vault.models import Credential, DataKey

logger = logging.getLogger(__name__)

DATA_KEY_CACHE_SECONDS = 300
DATA_KEY_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=4)
def _parse(value: str) -> crypto.KeyRing:
    return crypto.KeyRing.parse(value)


def keyring() -> crypto.KeyRing:
    """The key ring from ``PORTAL_ENCRYPTION_KEYS`` (parsed once per distinct value)."""
    return _parse(settings.PORTAL_ENCRYPTION_KEYS)


class _DataKeyCache:
    """Unwrapped data keys by (row, KEK, wrap time), for a few minutes, bounded in size.

    Unwrapping costs an AES-GCM operation and a database read; caching makes decrypting a
    credential cost one AES-GCM operation. Keys live only in this process's memory.
    """

    def __init__(self):
        self._items: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < time.monotonic():
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + DATA_KEY_CACHE_SECONDS, value)
            self._items.move_to_end(key)
            while len(self._items) > DATA_KEY_CACHE_SIZE:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


data_key_cache = _DataKeyCache()


def unwrap(data_key: DataKey) -> bytes:
    """The plaintext data key of ``data_key`` (cached); raises VaultError subclasses."""
    cache_key = (data_key.pk, data_key.kek_id, data_key.wrapped_at, settings.PORTAL_ENCRYPTION_KEYS)
    key = data_key_cache.get(cache_key)
    if key is None:
        key = crypto.unwrap_data_key(
            keyring(),
            data_key.kek_id,
            data_key.wrapped_key,
            organization_id=data_key.organization_id,
        )
        data_key_cache.put(cache_key, key)
    return key


def create_data_key(organization: Organization, *, active: bool = True) -> DataKey:
    """A fresh random data key for ``organization``, wrapped under the primary KEK."""
    kek_id, wrapped = crypto.wrap_data_key(
        keyring(), crypto.new_data_key(), organization_id=organization.pk
    )
    return DataKey.objects.create(
        organization=organization, kek_id=kek_id, wrapped_key=wrapped, active=active
    )


def active_data_key(organization: Organization) -> DataKey:
    """The organization's active data key, created on first use (race-safe)."""
    existing = DataKey.objects.for_tenant(organization).filter(active=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return create_data_key(organization)
    except IntegrityError:  # another request created it first
        return DataKey.objects.for_tenant(organization).get(active=True)


def encode(sealed: bytes) -> str:
    return base64.b64encode(sealed).decode("ascii")


def decode(stored: str) -> bytes:
    try:
        return base64.b64decode(stored, validate=True)
    except ValueError:
        raise crypto.DecryptionError("Stored ciphertext is not valid base64.") from None


def encrypt_secret(data_key: DataKey, value: str, *, binding: str, field: str) -> str:
    """Encrypt one secret under ``data_key``, bound to ``binding`` (a row's id) and ``field``;
    returns base64 text for a database column."""
    return encode(
        crypto.encrypt_value(
            unwrap(data_key),
            value,
            organization_id=data_key.organization_id,
            credential_id=binding,
            field=field,
        )
    )


def decrypt_secret(data_key: DataKey, stored: str, *, binding: str, field: str) -> str:
    """Decrypt what :func:`encrypt_secret` produced for the same binding; raises VaultError."""
    return crypto.decrypt_value(
        unwrap(data_key),
        decode(stored),
        organization_id=data_key.organization_id,
        credential_id=binding,
        field=field,
    )


def seal_secrets(credential: Credential, values: dict[str, str], data_key: DataKey) -> None:
    """Encrypt ``values`` into ``credential`` (not saved) under ``data_key``.

    Fields not in ``values`` keep their existing ciphertext, which must already be under
    ``data_key``.
    """
    credential.data_key = data_key
    for field, value in values.items():
        credential.secret_values[field] = encrypt_secret(
            data_key, value, binding=str(credential.uid), field=field
        )
        credential.secret_hints[field] = value[-4:] if len(value) >= 12 else ""


def open_secrets(credential: Credential, fields: Iterable[str] | None = None) -> dict[str, str]:
    """Decrypt the secret ``fields`` of ``credential`` (default: all of them); raises
    VaultError on any failure.

    The plaintext lives only in the returned dict: keep it in a local variable for as long
    as the request or task needs it, never on a model, in a cache or in a message.
    """
    names = credential.secret_values if fields is None else fields
    return {
        field: decrypt_secret(
            credential.data_key,
            credential.secret_values[field],
            binding=str(credential.uid),
            field=field,
        )
        for field in names
    }


def verify_keyring() -> list[str]:
    """Problems that make stored data undecryptable with the configured keys (empty: fine).

    Every KEK id used by a data key must be configured and must actually unwrap a data key
    (a key replaced under the same id is caught too). Used at start-up by the system check,
    the WSGI application and Celery workers.
    """
    try:
        ring = keyring()
    except crypto.KeyConfigurationError as error:
        return [str(error)]
    problems = []
    every_key = DataKey.objects.unscoped("start-up check: every stored data key must open")
    database = connections[router.db_for_read(DataKey)]
    try:
        if DataKey._meta.db_table not in database.introspection.table_names():
            # Before the first migrate nothing is stored, so nothing can be undecryptable:
            # a healthy first start, not worth a word.
            return []
        used = sorted(set(every_key.values_list("kek_id", flat=True)))
    except (OperationalError, ProgrammingError) as error:
        # The database is down: nothing can be checked now; the check runs again at start.
        logger.warning(
            "encryption key check skipped: the database is unreachable (%s)",
            type(error).__name__,
        )
        return []
    for kek_id in used:
        if kek_id not in ring.ids:
            count = every_key.filter(kek_id=kek_id).count()
            problems.append(
                f"Encryption key {kek_id!r} wraps {count} data key(s) but is missing from "
                "PORTAL_ENCRYPTION_KEYS."
            )
            continue
        sample = every_key.filter(kek_id=kek_id).order_by("pk").first()
        try:
            crypto.unwrap_data_key(
                ring, kek_id, sample.wrapped_key, organization_id=sample.organization_id
            )
        except crypto.DecryptionError:
            problems.append(
                f"Encryption key {kek_id!r} in PORTAL_ENCRYPTION_KEYS is not the key that "
                "wrapped the stored data keys (wrong key under that id)."
            )
    return problems
