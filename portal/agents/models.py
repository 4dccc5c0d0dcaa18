"""Agent groups, agents, their one-time registration keys, and the jobs handed to them.

Secrets (an agent's secret, a registration key) are stored as SHA-256 hashes only. Both carry
their organization's id (``cpa_<org>.<id>.<random>``, ``cpr_<org>.<id>.<random>``), so the
transport finds the row through ``for_tenant`` without reading across organizations.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.tenancy.models import TenantOwnedModel

#: An agent is online when its last heartbeat (or long-poll) is this recent.
ONLINE_SECONDS = 60


class AgentState(models.TextChoices):
    """What Manage > Agents shows for an agent (derived, not stored)."""

    WAITING = "waiting", "Waiting for registration"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    REVOKED = "revoked", "Revoked"


class AgentGroup(TenantOwnedModel):
    """A named set of agents; a processflow is deployed to the Cloud agent or to a group.

    ``requested_applications`` remembers applications a definition asked of this group before
    any of its agents had them configured, so the agents' Settings panel can offer them.
    """

    name = models.CharField(max_length=100)
    requested_applications = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="agent_group_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Agent(TenantOwnedModel):
    """One installed agent program. ``applications`` is what it reports configured:
    ``[{"application", "name", "valid", "validated_at"}]`` (never a secret)."""

    group = models.ForeignKey(AgentGroup, on_delete=models.PROTECT, related_name="agents")
    name = models.CharField(max_length=100)
    secret_hash = models.CharField(max_length=64, blank=True, db_index=True)
    version = models.CharField(max_length=50, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    applications = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_online(self) -> bool:
        return (
            self.revoked_at is None
            and self.last_seen_at is not None
            and timezone.now() - self.last_seen_at <= timedelta(seconds=ONLINE_SECONDS)
        )

    @property
    def state(self) -> str:
        """revoked, waiting (for registration), online or offline."""
        if self.revoked_at is not None:
            return AgentState.REVOKED
        if self.registered_at is None:
            return AgentState.WAITING
        return AgentState.ONLINE if self.is_online else AgentState.OFFLINE


class RegistrationKey(TenantOwnedModel):
    """A one-time key that pairs an installed agent with its row. Shown once; expires."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="registration_keys")
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"registration key {self.pk} of agent {self.agent_id}"

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        return "expired" if self.expires_at <= timezone.now() else "active"


class AgentJob(TenantOwnedModel):
    """Work for a group other than runs: subscribe or unsubscribe a deployment's webhook,
    poll a deployment's source. Leased to one agent like a run; done once its result came
    back (a result sent twice is applied once)."""

    class Kind(models.TextChoices):
        SUBSCRIBE = "subscribe", "Subscribe"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
        POLL = "poll", "Poll"

    group = models.ForeignKey(AgentGroup, on_delete=models.CASCADE, related_name="jobs")
    deployment = models.ForeignKey(
        "processflows.Deployment", on_delete=models.CASCADE, related_name="agent_jobs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    #: What the agent needs besides the deployment (the subscription to remove...); never
    #: a secret: the signing key of a subscribe job is opened when it is handed out.
    payload = models.JSONField(default=dict, blank=True)
    agent = models.ForeignKey(
        Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(
                fields=["group", "created_at"],
                name="agent_job_pending",
                condition=models.Q(done_at=None),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} of deployment {self.deployment_id}"

    @property
    def wire_id(self) -> str:
        return f"{self.kind}:{self.deployment_id}:{self.pk}"
