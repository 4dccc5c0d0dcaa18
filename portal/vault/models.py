"""Credentials, the data keys that encrypt their secrets, and the credential audit log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from portal.tenancy.models import TenantOwnedModel


class DataKey(TenantOwnedModel):
    """An organization's data key, stored only wrapped by a key-encryption key (``kek_id``).

    Exactly one data key per organization is active (encrypts new secrets); after a
    re-encrypting rotation the old ones are deleted once no credential refers to them.
    """

    kek_id = models.CharField(max_length=32, db_index=True)
    wrapped_key = models.BinaryField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    wrapped_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(active=True),
                name="one_active_data_key_per_org",
            )
        ]

    def __str__(self) -> str:
        return f"data key {self.pk} of organization {self.organization_id} (KEK {self.kek_id})"


class CredentialStatus(models.TextChoices):
    UNVALIDATED = "unvalidated", "Not validated"
    VALID = "valid", "Valid"
    INVALID = "invalid", "Invalid"


class Credential(TenantOwnedModel):
    """A tenant's credential for one application (connector), with encrypted secret fields.

    ``secret_values`` maps field names to base64 AES-GCM ciphertexts bound to this row's
    ``uid``; ``secret_hints`` keeps the last four characters of each, for the masked display,
    so listing credentials never decrypts anything.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    application = models.CharField(max_length=64)
    type = models.CharField(max_length=32, default="rest")
    name = models.CharField(max_length=100)
    fields = models.JSONField(default=dict, blank=True)
    data_key = models.ForeignKey(DataKey, on_delete=models.PROTECT, related_name="+")
    secret_values = models.JSONField(default=dict)
    secret_hints = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=CredentialStatus.choices, default=CredentialStatus.UNVALIDATED
    )
    status_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    account = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application", "name"]
        constraints = [
            # Case-insensitive, like the service's check, so a race cannot slip past it.
            models.UniqueConstraint(
                "organization",
                "application",
                Lower("name"),
                name="credential_name_unique",
            )
        ]
        indexes = [models.Index(fields=["organization", "application", "type"])]

    def __str__(self) -> str:
        return f"{self.application}: {self.name}"

    def masked_secrets(self) -> dict[str, str]:
        """``{"field": "••••abcd"}``: what pages and API responses show of each secret."""
        return {field: f"••••{hint}" for field, hint in self.secret_hints.items()}


class CredentialEvent(TenantOwnedModel):
    """One entry of a credential's audit history. Holds outcomes and messages, never secrets.

    The credential's name and application are copied so the history survives deletion.
    """

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        SECRET_REPLACED = "secret_replaced", "Secret replaced"
        VALIDATED = "validated", "Validated"
        USED = "used", "Used by an action"
        DECRYPT_FAILED = "decrypt_failed", "Could not be decrypted"
        KEYS_ROTATED = "keys_rotated", "Keys rotated"
        DELETED = "deleted", "Deleted"

    credential = models.ForeignKey(
        Credential, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    credential_name = models.CharField(max_length=100)
    application = models.CharField(max_length=64)
    action = models.CharField(max_length=32, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.credential_name}: {self.action}"


class KeyRotation(models.Model):
    """One run of ``manage.py rotate_encryption_keys --reencrypt``; an unfinished run is
    resumed by the next invocation instead of starting over with yet another data key."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"key rotation started {self.started_at:%Y-%m-%d %H:%M}"
