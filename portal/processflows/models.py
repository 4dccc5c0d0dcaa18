"""Processflows, versions, deployments, trigger events with their outbox, runs and steps."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from portal.tenancy.models import TenantOwnedModel


class TriggerType(models.TextChoices):
    WEBHOOK = "webhook", "Triggered (webhook)"
    POLLING = "polling", "Polling (schedule)"


class Processflow(TenantOwnedModel):
    """A named integration. Its definition lives in versions; editing makes a new version,
    and a deployment pins one, so a running flow never changes under its runs."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    trigger_type = models.CharField(max_length=16, choices=TriggerType.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The Processflow URL's secret part. Generated once, so the URL stays stable across
    # deployments and another flow (or the application) can be given it before the first deploy.
    hook_id = models.CharField(max_length=64, unique=True, editable=False)
    # Where it is meant to run: the Cloud agent (null) or an on-premise agent group, whose
    # agents hold the credentials its definition names. Deploying pins it on the deployment.
    agent_group = models.ForeignKey(
        "agents.AgentGroup", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="processflow_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class ProcessflowVersion(TenantOwnedModel):
    """An immutable definition: ``{"trigger": {...}, "steps": [...]}`` (see definitions.py)."""

    processflow = models.ForeignKey(Processflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["processflow", "number"], name="version_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.processflow} v{self.number}"


CLOUD_AGENT = "Cloud agent"


class RegistrationState(models.TextChoices):
    NONE = "none", "Not needed"
    PENDING = "pending", "Pending"
    # The seed's manual way: another processflow's "Create Webhook Subscription" step
    # subscribes this flow's URL; the portal gives that step this deployment's signing key.
    MANUAL = "manual", "Waiting for a subscription made by another processflow"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    REMOVING = "removing", "Removing"
    REMOVED = "removed", "Removed"


class Deployment(TenantOwnedModel):
    """A version of a processflow deployed to an agent.

    For a triggered flow it owns the webhook subscription at the application (with our own
    signing key, encrypted like a credential secret); for a polling flow, its schedule.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Deployed"
        UNDEPLOYED = "undeployed", "Undeployed"

    processflow = models.ForeignKey(
        Processflow, on_delete=models.CASCADE, related_name="deployments"
    )
    version = models.ForeignKey(ProcessflowVersion, on_delete=models.PROTECT, related_name="+")
    # The agent it runs on: the Cloud agent (null) or an on-premise agent group.
    agent_group = models.ForeignKey(
        "agents.AgentGroup", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    registration_state = models.CharField(
        max_length=16, choices=RegistrationState.choices, default=RegistrationState.NONE
    )
    registration_message = models.TextField(blank=True)
    registered_url = models.URLField(max_length=500, blank=True)
    subscription_uri = models.URLField(max_length=500, blank=True)
    signing_data_key = models.ForeignKey(
        "vault.DataKey", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signing_key_ciphertext = models.TextField(blank=True)
    schedule = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    cursor = models.JSONField(default=dict, blank=True)
    bad_signature_count = models.PositiveIntegerField(default=0)
    last_bad_signature_at = models.DateTimeField(null=True, blank=True)
    deployed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    deployed_at = models.DateTimeField(auto_now_add=True)
    undeployed_at = models.DateTimeField(null=True, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-deployed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["processflow"],
                condition=models.Q(state="active"),
                name="one_active_deployment_per_flow",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} on {self.get_agent_display()} ({self.state})"

    def get_agent_display(self) -> str:
        """ "Cloud agent" or "agent group <name>", as pages show it."""
        if self.agent_group_id is None:
            return CLOUD_AGENT
        return f"agent group {self.agent_group.name}"


class TriggerEvent(TenantOwnedModel):
    """Something that starts a run: a verified webhook delivery or a polled record.

    Stored with its outbox entry in one transaction before the sender gets its 2xx; the
    ``dedupe_key`` (a delivery id the application sends, or derived from the payload) makes
    duplicate deliveries collapse into one row.
    """

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        POLL = "poll", "Polling"
        MANUAL = "manual", "Manual"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    source = models.CharField(max_length=16, choices=Source.choices)
    event_name = models.CharField(max_length=100, blank=True)
    dedupe_key = models.CharField(max_length=128)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    duplicates = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "dedupe_key"], name="event_dedupe")
        ]

    def __str__(self) -> str:
        return f"{self.event_name or self.source} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class RejectedDelivery(TenantOwnedModel):
    """A webhook delivery refused at intake (bad signature, stale, not JSON...): kept for
    the portal's list with its reason, never processed. The body is not stored."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="rejections")
    reason = models.CharField(max_length=200)
    status_code = models.PositiveSmallIntegerField()
    size = models.PositiveIntegerField()
    headers = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Only so many are stored per deployment per minute (``processflows.rejections``); one
    # more row stands for the rest of that minute: it holds the minute and, once the minute
    # is over and the row was read, how many more were refused.
    unstored_minute = models.DateTimeField(null=True, blank=True)
    unstored_count = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]


class Outbox(models.Model):
    """Work that must reach Celery. Written in the same transaction as its event; the relay
    (``manage.py relay_outbox``) publishes it within moments, and the sweeper re-publishes
    whatever is still not done after a bound, so a broker outage or a killed worker delays
    but never loses it."""

    event = models.OneToOneField(TriggerEvent, on_delete=models.CASCADE, related_name="outbox")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], name="outbox_pending", condition=models.Q(done_at=None)
            ),
            # What the relay reads many times a second: entries not yet published.
            models.Index(
                fields=["id"],
                name="outbox_unpublished",
                condition=models.Q(published_at=None, done_at=None),
            ),
        ]

    def __str__(self) -> str:
        return f"outbox entry of event {self.event_id} ({'done' if self.done_at else 'pending'})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Run(TenantOwnedModel):
    """One execution of a deployed version for one trigger event.

    At most one run per event (a redelivered task finds it); a replay is a new run that
    points at the one it replays. Workers claim a run with a lease, so a run whose worker
    was killed is picked up again when the lease expires.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    processflow = models.ForeignKey(Processflow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(ProcessflowVersion, on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(
        Deployment, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    event = models.ForeignKey(
        TriggerEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    replay_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replays"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    attempt = models.PositiveIntegerField(default=0)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    # The on-premise agent that ran (or runs) it last; null on the Cloud agent.
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["event"],
                condition=models.Q(replay_of=None, event__isnull=False),
                name="one_run_per_event",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "status", "created_at"]),
            # The sweeper's question: which unfinished runs are overdue or lost their worker.
            models.Index(
                fields=["next_attempt_at", "created_at"],
                name="run_unfinished",
                condition=models.Q(status__in=["queued", "running", "retrying"]),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.processflow_id} ({self.status})"


class StepRun(models.Model):
    """One step of a run: what was asked, what came back, how long it took."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    attempts = models.PositiveIntegerField(default=0)
    request = models.JSONField(default=dict, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="one_record_per_step")
        ]

    def __str__(self) -> str:
        return f"step {self.position} ({self.name}) of run {self.run_id}: {self.status}"
