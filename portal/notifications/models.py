"""Alert rules (where an organization wants to hear about trouble), the alerts raised, and
each alert's deliveries: the page that lists what was sent reads these."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.tenancy.models import TenantOwnedModel


class AlertKind(models.TextChoices):
    RUN_FAILED = "run_failed", "A run failed for good"
    SUBSCRIPTION = "subscription", "A webhook subscription is disabled or failing"
    CREDENTIAL_INVALID = "credential_invalid", "A credential became invalid"


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Outbound webhook"


class AlertRule(TenantOwnedModel):
    """Send alerts of ``kinds`` to an e-mail address or an outbound webhook.

    A webhook rule signs its requests the Standard Webhooks way with a secret of its own,
    shown once when the rule is created and kept encrypted (a sealed secret, like a
    deployment's signing key).
    """

    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    kinds = models.JSONField(default=list)
    email = models.EmailField(blank=True)
    url = models.URLField(max_length=500, blank=True)
    uid = models.UUIDField(unique=True, editable=False)
    signing_data_key = models.ForeignKey(
        "vault.DataKey", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signing_secret_ciphertext = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def kind_labels(self) -> list[str]:
        return [AlertKind(kind).label for kind in self.kinds if kind in AlertKind.values]

    @property
    def target(self) -> str:
        return self.email if self.channel == Channel.EMAIL else self.url


class Alert(TenantOwnedModel):
    """Something that needs attention. At most one per subject (a processflow, a
    credential) and kind per quiet period: what happens again within it only counts in
    ``repeats``."""

    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    subject = models.CharField(max_length=64)  # "processflow:12", "credential:3"
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    repeats = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["organization", "kind", "subject", "created_at"])]

    def __str__(self) -> str:
        return self.title


class AlertDelivery(models.Model):
    """One alert sent (or being sent) by one rule."""

    class Status(models.TextChoices):
        PENDING = "pending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    rule = models.ForeignKey(
        AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=500)
    message_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.channel} to {self.target}: {self.status}"
