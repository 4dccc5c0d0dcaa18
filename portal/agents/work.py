"""Queueing work for an agent group besides runs: subscribe or unsubscribe a deployment's
webhook, poll a deployment's source. The portal's registration and polling call these for
deployments on a group instead of calling the application themselves; the agents take the
jobs through the transport (``portal.agents.jobs``)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from flows.definition import application
from portal.agents.models import AgentJob
from portal.agents.wake import wake
from portal.processflows.models import Deployment, RegistrationState
from portal.processflows.signing import new_signing_key


def _queue(deployment: Deployment, kind: str, payload: dict | None = None) -> AgentJob:
    job = AgentJob.objects.create(
        organization_id=deployment.organization_id,
        group_id=deployment.agent_group_id,
        deployment=deployment,
        kind=kind,
        payload=payload or {},
    )
    group_id = deployment.agent_group_id
    transaction.on_commit(lambda: wake(group_id))
    return job


def _pending(deployment: Deployment, kind: str) -> bool:
    return (
        AgentJob.objects.for_tenant(deployment.organization_id)
        .filter(deployment=deployment, kind=kind, done_at__isnull=True)
        .exists()
    )


def _state(deployment: Deployment, state: str, message: str, *extra: str) -> None:
    deployment.registration_state = state
    deployment.registration_message = message
    deployment.save(update_fields=["registration_state", "registration_message", *extra])


@transaction.atomic
def queue_subscribe(deployment: Deployment) -> str:
    """Have the group's agent subscribe the Processflow URL with its local credential.

    The signing key is made and stored (encrypted) here, as for the Cloud agent, before any
    agent learns it; the agent receives it in the job. Returns the registration state.
    """
    if _pending(deployment, AgentJob.Kind.SUBSCRIBE):
        return deployment.registration_state
    trigger = deployment.version.definition["trigger"]
    extra = []
    if application(trigger["application"]).webhooks.signing_key_by == "portal":
        new_signing_key(deployment)
        extra = ["signing_data_key", "signing_key_ciphertext"]
    _state(
        deployment,
        RegistrationState.PENDING,
        f"Waiting for agent group {deployment.agent_group.name} to subscribe the Processflow URL…",
        *extra,
    )
    _queue(deployment, AgentJob.Kind.SUBSCRIBE)
    return RegistrationState.PENDING


@transaction.atomic
def queue_unsubscribe(deployment: Deployment) -> str:
    """Have the group's agent delete the deployment's subscription at the application."""
    if not deployment.subscription_uri:
        _state(deployment, RegistrationState.REMOVED, "Nothing was registered.")
        return RegistrationState.REMOVED
    if not _pending(deployment, AgentJob.Kind.UNSUBSCRIBE):
        _queue(deployment, AgentJob.Kind.UNSUBSCRIBE, {"subscription": deployment.subscription_uri})
    _state(
        deployment,
        RegistrationState.REMOVING,
        f"Waiting for agent group {deployment.agent_group.name} to delete the subscription…",
    )
    return RegistrationState.REMOVING


#: Finished poll jobs are kept this long (for looking into a poll), then removed.
DONE_POLLS_KEPT = timedelta(days=1)


def queue_poll(deployment: Deployment) -> int:
    """Have the group's agent poll the deployment's source (once: a poll still waiting for
    an agent is not queued twice). Returns 0: the records arrive with the job's result."""
    with transaction.atomic():
        if not _pending(deployment, AgentJob.Kind.POLL):
            _queue(deployment, AgentJob.Kind.POLL)
        # A schedule makes a job a minute or more often: old ones must not pile up.
        AgentJob.objects.for_tenant(deployment.organization_id).filter(
            deployment=deployment,
            kind=AgentJob.Kind.POLL,
            done_at__lt=timezone.now() - DONE_POLLS_KEPT,
        ).delete()
    return 0
