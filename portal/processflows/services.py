"""Writes to processflows: create and edit (each edit a new version), deploy and undeploy,
replay. Each takes the organization first and the acting membership; pages and the API
call these."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.processflows import polling, registration, runs
from portal.processflows.definitions import clean_definition, credentials_used
from portal.processflows.models import (
    Deployment,
    Processflow,
    ProcessflowVersion,
    RegistrationState,
    Run,
    RunStatus,
    TriggerType,
)
from portal.processflows.outbox import enqueue
from portal.processflows.selectors import access_processflow_by_id, access_run_by_id
from portal.tenancy.models import Membership, Organization
from portal.tenancy.permissions import Perm, require_perm
from portal.vault import services as vault_services
from portal.vault.models import Credential, CredentialStatus


def _check_name(organization, name, *, exclude_pk=None) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError({"name": ["Give the processflow a name."]})
    if len(name) > 100:
        raise ValidationError({"name": ["Keep the name under 100 characters."]})
    clash = Processflow.objects.for_tenant(organization).filter(name__iexact=name)
    if exclude_pk:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": [f"A processflow named {name!r} exists already."]})
    return name


@transaction.atomic
def create_processflow(
    organization: Organization,
    *,
    actor: Membership,
    name: str,
    definition: dict,
    description: str = "",
) -> Processflow:
    """Create a processflow and its first version (not deployed)."""
    require_perm(actor, Perm.CHANGE)
    name = _check_name(organization, name)
    cleaned = clean_definition(organization, definition)
    flow = Processflow.objects.create(
        organization=organization,
        name=name,
        description=(description or "").strip(),
        trigger_type=cleaned["trigger"]["type"],
        created_by=actor.user,
        hook_id=secrets.token_urlsafe(24),
    )
    ProcessflowVersion.objects.create(
        organization=organization,
        processflow=flow,
        number=1,
        definition=cleaned,
        created_by=actor.user,
    )
    return flow


@transaction.atomic
def update_processflow(
    organization: Organization,
    *,
    actor: Membership,
    processflow_id: int,
    name: str | None = None,
    description: str | None = None,
    definition: dict | None = None,
) -> Processflow:
    """Rename or describe a flow, or save a new version of its definition.

    A deployed flow keeps running its pinned version until it is deployed again.
    """
    flow = access_processflow_by_id(organization, processflow_id, for_update=True)
    require_perm(actor, Perm.CHANGE)
    if name is not None:
        flow.name = _check_name(organization, name, exclude_pk=flow.pk)
    if description is not None:
        flow.description = description.strip()
    if definition is not None:
        cleaned = clean_definition(organization, definition)
        if cleaned["trigger"]["type"] != flow.trigger_type:
            raise ValidationError(
                {"trigger.type": ["A flow keeps its trigger type; create a new flow to change it."]}
            )
        latest = flow.versions.first()
        if latest is None or latest.definition != cleaned:
            ProcessflowVersion.objects.create(
                organization=organization,
                processflow=flow,
                number=(latest.number + 1) if latest else 1,
                definition=cleaned,
                created_by=actor.user,
            )
    flow.save()
    return flow


def _check_credentials(organization: Organization, actor: Membership, definition: dict) -> None:
    """Refuse to deploy with a credential that does not work, naming it."""
    for credential_id in credentials_used(definition):
        credential = Credential.objects.for_tenant(organization).filter(pk=credential_id).first()
        if credential is None:
            raise ValidationError(f"Credential {credential_id} no longer exists; edit the flow.")
        if credential.status == CredentialStatus.UNVALIDATED:
            vault_services.validate_credential(
                organization, actor=actor, credential_id=credential.pk
            )
            credential.refresh_from_db()
        if credential.status != CredentialStatus.VALID:
            raise ValidationError(
                f"Credential {credential.name!r} ({credential.application}) is not valid: "
                f"{credential.status_message or 'validate it in Manage › App'} "
                "Fix it and validate it again before deploying."
            )


def deploy(organization: Organization, *, actor: Membership, processflow_id: int) -> Deployment:
    """Deploy the latest version to the Cloud agent.

    A triggered flow gets its subscription registered by a worker (state ``pending`` until
    then); a polling flow gets its schedule. Deploying the version already deployed changes
    nothing.
    """
    require_perm(actor, Perm.CHANGE)
    flow = access_processflow_by_id(organization, processflow_id)
    version = flow.versions.first()
    _check_credentials(organization, actor, version.definition)
    with transaction.atomic():
        flow = access_processflow_by_id(organization, processflow_id, for_update=True)
        current = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
        if current is not None and current.version_id == version.pk:
            return current
        if current is not None:
            _undeploy(current)
        manual = version.definition["trigger"].get("registration") == "manual"
        deployment = Deployment.objects.create(
            organization=organization,
            processflow=flow,
            version=version,
            deployed_by=actor.user,
            registration_state=(
                RegistrationState.NONE
                if flow.trigger_type != TriggerType.WEBHOOK
                else RegistrationState.MANUAL
                if manual
                else RegistrationState.PENDING
            ),
        )
        if flow.trigger_type == TriggerType.WEBHOOK and manual:
            registration.await_manual_subscription(deployment)
        elif flow.trigger_type == TriggerType.WEBHOOK:
            from portal.processflows.tasks import register_subscription

            transaction.on_commit(lambda: enqueue(register_subscription, deployment.pk))
        else:
            deployment.schedule = polling.schedule(deployment)
            deployment.save(update_fields=["schedule"])
    return deployment


def _undeploy(deployment: Deployment) -> None:
    deployment.state = Deployment.State.UNDEPLOYED
    deployment.undeployed_at = timezone.now()
    fields = ["state", "undeployed_at"]
    if deployment.processflow.trigger_type == TriggerType.WEBHOOK:
        deployment.registration_state = RegistrationState.REMOVING
        fields.append("registration_state")
        from portal.processflows.tasks import remove_subscription

        transaction.on_commit(lambda: enqueue(remove_subscription, deployment.pk))
    else:
        polling.unschedule(deployment)
        deployment.schedule = None
        fields.append("schedule")
    deployment.save(update_fields=fields)


@transaction.atomic
def undeploy(
    organization: Organization, *, actor: Membership, processflow_id: int
) -> Deployment | None:
    """Stop a flow: its URL answers 404 at once; its subscription or schedule is removed."""
    require_perm(actor, Perm.CHANGE)
    flow = access_processflow_by_id(organization, processflow_id, for_update=True)
    current = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
    if current is None:
        raise ValidationError("This processflow is not deployed.")
    _undeploy(current)
    return current


@transaction.atomic
def delete_processflow(
    organization: Organization, *, actor: Membership, processflow_id: int
) -> None:
    """Undeploy if needed, then delete the flow with its versions and history."""
    require_perm(actor, Perm.CHANGE)
    flow = access_processflow_by_id(organization, processflow_id, for_update=True)
    current = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
    if current is not None:
        raise ValidationError("Undeploy the processflow before deleting it.")
    try:
        flow.delete()
    except IntegrityError:
        raise ValidationError("The processflow is still referenced; try again.") from None


@transaction.atomic
def replay_run(organization: Organization, *, actor: Membership, run_id: int) -> Run:
    """Run a failed run again, as a new run of the same version and input."""
    require_perm(actor, Perm.CHANGE)
    run = access_run_by_id(organization, run_id)
    if run.status != RunStatus.FAILED:
        raise ValidationError(f"Only failed runs can be replayed; this one is {run.status}.")
    return runs.replay(run)
