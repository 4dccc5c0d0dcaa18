"""What the agent keeps in its SQLite store.

Secret values live only in ``Connection.sealed`` and ``Registration.sealed_secret``, each
AES-GCM ciphertext bound to its row and field (``agent.local.store``); nothing else holds
one, and nothing here ever goes to the portal but names and validity.
"""

from __future__ import annotations

import uuid

from django.db import models


class Application(models.Model):
    """An application that processflows deployed to this agent's group use (from the
    portal's heartbeat answer), and whether this agent is set up for it (Settings panel)."""

    name = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    enabled = models.BooleanField(default=False)
    #: In the portal's latest answer; an application no flow uses any more stays listed
    #: (its connections are still here) but is marked so.
    offered = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Connection(models.Model):
    """A credential kept on this agent (the seed's App Configuration), used by steps that
    name it. ``fields`` holds the non-secret values; ``sealed`` the secret ones, encrypted."""

    class Status(models.TextChoices):
        UNVALIDATED = "unvalidated", "Not validated"
        VALID = "valid", "Valid"
        INVALID = "invalid", "Invalid"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    application = models.CharField(max_length=64)
    type = models.CharField(max_length=64, default="rest")
    name = models.CharField(max_length=100)
    fields = models.JSONField(default=dict, blank=True)
    sealed = models.JSONField(default=dict, blank=True)  # field -> base64 ciphertext
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNVALIDATED)
    status_message = models.TextField(blank=True)
    account = models.JSONField(default=dict, blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application", "name"]
        constraints = [
            models.UniqueConstraint(fields=["application", "name"], name="agent_connection_name")
        ]

    def __str__(self) -> str:
        return f"{self.application}/{self.name}"


class Registration(models.Model):
    """This agent's pairing with the portal (one row): where the portal is, who the agent
    is there, and its secret (sealed)."""

    portal_url = models.URLField(max_length=500)
    agent_id = models.BigIntegerField()
    name = models.CharField(max_length=200)
    group_id = models.BigIntegerField(null=True)
    group_name = models.CharField(max_length=200, blank=True)
    organization_slug = models.CharField(max_length=200, blank=True)
    organization_name = models.CharField(max_length=200, blank=True)
    sealed_secret = models.TextField()
    registered_at = models.DateTimeField(auto_now_add=True)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.portal_url}"


class OutboxItem(models.Model):
    """A report for the portal (a step record, a run's finish, a job's result), kept until
    the portal acknowledges it. Reports of one run are sent in order."""

    path = models.CharField(max_length=200)
    body = models.JSONField()
    run_id = models.BigIntegerField(null=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.path} ({self.attempts} attempts)"
