"""Writes to processflows: create and edit (each edit a new version), deploy and undeploy,
replay. Each takes the organization first and the acting membership (or a system actor);
pages and the API call these."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.agents import selectors as agent_selectors
from portal.agents.models import AgentGroup
from portal.applications import declarations
from portal.processflows import dispatch, polling, registration, runs, signing
from portal.processflows.definitions import (
    agent_credentials_used,
    clean_definition,
    credentials_used,
)
from portal.processflows.models import (
    Deployment,
    Processflow,
    ProcessflowVersion,
    RegistrationState,
    Run,
    RunStatus,
    TriggerType,
)
from portal.processflows.selectors import access_processflow_by_id, access_run_by_id
from portal.tenancy.models import Membership, Organization
from portal.tenancy.permissions import Perm
from portal.vault import services as vault_services
from portal.vault.audit import Actor, as_actor
from portal.vault.models import Credential, CredentialStatus


def _require_change(actor: Actor | Membership) -> Actor:
    actor = as_actor(actor)
    actor.require(Perm.CHANGE)
    return actor


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


_UNCHANGED = object()


def _target(organization: Organization, agent_group) -> AgentGroup | None:
    """The agent group a flow is meant for (None: the Cloud agent), by id or as given."""
    if agent_group is None or isinstance(agent_group, AgentGroup):
        return agent_group
    if isinstance(agent_group, bool) or not isinstance(agent_group, int):
        raise ValidationError({"agent_group": ["Choose an agent group, or none for Cloud."]})
    group = agent_selectors.list_groups(organization).filter(pk=agent_group).first()
    if group is None:
        raise ValidationError(
            {"agent_group": [f"Agent group {agent_group} does not exist in this organization."]}
        )
    return group


def create_processflow(
    organization: Organization,
    *,
    actor: Actor | Membership,
    name: str,
    definition: dict,
    description: str = "",
    agent_group: AgentGroup | int | None = None,
) -> Processflow:
    """Create a processflow and its first version (not deployed), meant for the Cloud agent
    or for ``agent_group`` (whose agents must report the credentials it names)."""
    actor = _require_change(actor)
    name = _check_name(organization, name)
    group = _target(organization, agent_group)
    # Checked before the transaction: a refusal notes on the group what it should offer.
    cleaned = clean_definition(organization, definition, agent_group=group)
    with transaction.atomic():
        return _create(organization, actor, name, description, cleaned, group)


def _create(organization, actor, name, description, cleaned, group) -> Processflow:
    name = _check_name(organization, name)
    flow = Processflow.objects.create(
        organization=organization,
        name=name,
        description=(description or "").strip(),
        trigger_type=cleaned["trigger"]["type"],
        created_by=actor.user,
        hook_id=secrets.token_urlsafe(24),
        agent_group=group,
    )
    ProcessflowVersion.objects.create(
        organization=organization,
        processflow=flow,
        number=1,
        definition=cleaned,
        created_by=actor.user,
    )
    return flow


def update_processflow(
    organization: Organization,
    *,
    actor: Actor | Membership,
    processflow_id: int,
    name: str | None = None,
    description: str | None = None,
    definition: dict | None = None,
    agent_group=_UNCHANGED,
) -> Processflow:
    """Rename or describe a flow, save a new version of its definition, or move it to
    another agent (``agent_group``: a group, its id, or None for the Cloud agent).

    A deployed flow keeps running its pinned version, on its agent, until it is deployed
    again. Moving it checks its definition against the new agent.
    """
    flow = access_processflow_by_id(organization, processflow_id)
    actor = _require_change(actor)
    moving = agent_group is not _UNCHANGED
    group = _target(organization, agent_group) if moving else flow.agent_group
    if moving and definition is None and group != flow.agent_group:
        definition = flow.versions.first().definition
    # Checked before the transaction: a refusal notes on the group what it should offer.
    cleaned = (
        clean_definition(organization, definition, agent_group=group)
        if definition is not None
        else None
    )
    with transaction.atomic():
        flow = access_processflow_by_id(organization, processflow_id, for_update=True)
        return _update(organization, actor, flow, name, description, cleaned, group)


def _update(organization, actor, flow, name, description, cleaned, group) -> Processflow:
    if name is not None:
        flow.name = _check_name(organization, name, exclude_pk=flow.pk)
    if description is not None:
        flow.description = description.strip()
    flow.agent_group = group
    if cleaned is not None:
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


def _sentence(text: str) -> str:
    text = (text or "").strip()
    return text if not text or text.endswith((".", "!", "?")) else f"{text}."


def _check_agent_credentials(group: AgentGroup, definition: dict) -> None:
    """Refuse to deploy to an agent group whose agents do not report the definition's
    credentials valid (at least one agent each), naming the first that is not."""
    for application, name in agent_credentials_used(definition):
        reported = agent_selectors.reported_credential(group, application, name)
        label = f"{declarations.display_name(application)} credential {name!r}"
        if not reported:
            raise ValidationError(
                f"Agent group {group.name!r} has no {label}; add it in the agent's App "
                "Configurations panel."
            )
        if not any(entry.get("valid") for entry in reported):
            raise ValidationError(
                f"Agent group {group.name!r} reports its {label} as not valid; validate it "
                "in the agent's App Configurations panel, then deploy again."
            )


def _check_credentials(organization: Organization, actor: Actor, definition: dict) -> None:
    """Refuse to deploy with a credential that does not work, naming it. A credential never
    validated is validated first (an outage leaves it unvalidated, and refuses too)."""
    for credential_id in credentials_used(definition):
        credential = Credential.objects.for_tenant(organization).filter(pk=credential_id).first()
        if credential is None:
            raise ValidationError(f"Credential {credential_id} no longer exists; edit the flow.")
        if credential.status == CredentialStatus.UNVALIDATED:
            vault_services.validate_credential(
                organization, actor=actor, credential_id=credential.pk
            )
            credential.refresh_from_db()
        if credential.status == CredentialStatus.VALID:
            continue
        label = f"{credential.name!r} ({declarations.display_name(credential.application)})"
        if credential.status == CredentialStatus.UNVALIDATED:
            raise ValidationError(
                f"Credential {label} could not be validated: "
                f"{_sentence(credential.status_message)} Deploy again when it can be."
            )
        raise ValidationError(
            f"Credential {label} is not valid: "
            f"{_sentence(credential.status_message) or 'Validate it in Manage › App.'} "
            "Fix it and validate it again before deploying."
        )


def _enqueue_registration(deployment: Deployment) -> None:
    if deployment.agent_group_id is not None:
        # A job for the group's agents, in the database: no broker in between to lose it.
        registration.register(deployment)
        return
    organization_id, deployment_id = deployment.organization_id, deployment.pk
    transaction.on_commit(lambda: dispatch.register_subscription(organization_id, deployment_id))


def deploy(
    organization: Organization, *, actor: Actor | Membership, processflow_id: int
) -> Deployment:
    """Deploy the latest version to the flow's agent: the Cloud agent, or its agent group
    (whose agents then subscribe, poll and run it with their own credentials).

    A triggered flow gets its subscription registered by a worker (state ``pending`` until
    then); a polling flow gets its schedule. Deploying the version already deployed changes
    nothing, except that a failed registration is tried again.
    """
    flow = access_processflow_by_id(organization, processflow_id)
    actor = _require_change(actor)
    version = flow.versions.first()
    if flow.agent_group is not None:
        _check_agent_credentials(flow.agent_group, version.definition)
    else:
        _check_credentials(organization, actor, version.definition)
    with transaction.atomic():
        flow = access_processflow_by_id(organization, processflow_id, for_update=True)
        version = flow.versions.first()
        current = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
        if (
            current is not None
            and current.version_id == version.pk
            and current.agent_group_id == flow.agent_group_id
        ):
            if current.registration_state == RegistrationState.FAILED and (
                version.definition["trigger"].get("registration", "automatic") == "automatic"
            ):
                current.registration_state = RegistrationState.PENDING
                current.registration_message = "Registering the webhook subscription again…"
                current.save(update_fields=["registration_state", "registration_message"])
                _enqueue_registration(current)
            return current
        manual = version.definition["trigger"].get("registration") == "manual"
        webhook = flow.trigger_type == TriggerType.WEBHOOK
        kept_key = None
        if current is not None and _can_hand_over(current, version):
            kept_key = signing.signing_key(current, purpose="kept by a redeployment")
        handing_over = kept_key is not None
        if handing_over:
            current.state = Deployment.State.UNDEPLOYED
            current.undeployed_at = timezone.now()
            current.save(update_fields=["state", "undeployed_at"])
        elif current is not None:
            _undeploy(current)
        deployment = Deployment.objects.create(
            organization=organization,
            processflow=flow,
            version=version,
            agent_group=flow.agent_group,
            deployed_by=actor.user,
            registration_message=(
                "Registering the webhook subscription…" if webhook and not manual else ""
            ),
            registration_state=(
                RegistrationState.NONE
                if not webhook
                else RegistrationState.MANUAL
                if manual
                else RegistrationState.PENDING
            ),
        )
        if handing_over:
            _hand_over(current, deployment, kept_key)
        elif webhook and manual:
            registration.await_manual_subscription(deployment)
        elif webhook:
            _enqueue_registration(deployment)
        else:
            deployment.schedule = polling.schedule(deployment)
            deployment.save(update_fields=["schedule"])
    return deployment


def _can_hand_over(current: Deployment, version: ProcessflowVersion) -> bool:
    """Whether a redeploy can keep the current webhook subscription: same trigger (events,
    scope, credential, registration) and a subscription that is live at this URL. Deleting
    and re-creating it instead would leave a gap in which the application's events are lost."""
    return (
        current.processflow.trigger_type == TriggerType.WEBHOOK
        and current.agent_group_id == current.processflow.agent_group_id
        and current.version.definition["trigger"] == version.definition["trigger"]
        and current.registration_state == RegistrationState.ACTIVE
        and bool(current.subscription_uri)
        and current.registered_url == registration.processflow_url(current.processflow)
        and bool(current.signing_key_ciphertext)
    )


def _hand_over(current: Deployment, deployment: Deployment, key: str) -> None:
    """Move the live subscription and its signing ``key`` from ``current`` (already marked
    undeployed) to ``deployment``."""
    signing.store_signing_key(deployment, key)
    deployment.registration_state = RegistrationState.ACTIVE
    deployment.registration_message = (
        f"Kept the webhook subscription of version {current.version.number}."
    )
    deployment.subscription_uri = current.subscription_uri
    deployment.registered_url = current.registered_url
    deployment.reconciled_at = current.reconciled_at
    deployment.save()
    current.registration_state = RegistrationState.REMOVED
    current.registration_message = (
        f"The subscription was handed over to version {deployment.version.number}."
    )
    current.subscription_uri = ""
    current.save(update_fields=["registration_state", "registration_message", "subscription_uri"])


def _undeploy(deployment: Deployment) -> None:
    deployment.state = Deployment.State.UNDEPLOYED
    deployment.undeployed_at = timezone.now()
    fields = ["state", "undeployed_at"]
    if deployment.processflow.trigger_type == TriggerType.WEBHOOK:
        deployment.registration_state = RegistrationState.REMOVING
        deployment.registration_message = "Deleting the webhook subscription…"
        fields += ["registration_state", "registration_message"]
        organization_id, deployment_id = deployment.organization_id, deployment.pk
        if deployment.agent_group_id is not None:
            deployment.save(update_fields=fields)
            registration.unregister(deployment)  # a job for the group's agents
            return
        transaction.on_commit(lambda: dispatch.remove_subscription(organization_id, deployment_id))
    else:
        polling.unschedule(deployment)
        deployment.schedule = None
        fields.append("schedule")
    deployment.save(update_fields=fields)


@transaction.atomic
def undeploy(
    organization: Organization, *, actor: Actor | Membership, processflow_id: int
) -> Deployment:
    """Stop a flow: its URL answers 404 at once; its subscription or schedule is removed."""
    flow = access_processflow_by_id(organization, processflow_id, for_update=True)
    _require_change(actor)
    current = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
    if current is None:
        raise ValidationError("This processflow is not deployed.")
    _undeploy(current)
    return current


@transaction.atomic
def delete_processflow(
    organization: Organization, *, actor: Actor | Membership, processflow_id: int
) -> None:
    """Delete an undeployed flow with its versions and history (a deployed one is refused:
    undeploying first removes its subscription or schedule)."""
    flow = access_processflow_by_id(organization, processflow_id, for_update=True)
    _require_change(actor)
    current = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
    if current is not None:
        raise ValidationError("Undeploy the processflow before deleting it.")
    removing = flow.deployments.filter(registration_state=RegistrationState.REMOVING)
    if removing.exclude(subscription_uri="").exists():
        # Deleting now would forget the subscription that is still to be deleted there.
        raise ValidationError(
            "The webhook subscription is still being deleted at the application; "
            "try again in a minute."
        )
    try:
        # Runs and deployments pin versions (protected), so they go first.
        flow.runs.all().delete()
        for deployment in flow.deployments.all():
            polling.unschedule(deployment)
        flow.deployments.all().delete()
        flow.delete()
    except IntegrityError:
        raise ValidationError("The processflow is still referenced; try again.") from None


@transaction.atomic
def replay_run(organization: Organization, *, actor: Actor | Membership, run_id: int) -> Run:
    """Run a failed run again, as a new run of the same version and input."""
    run = access_run_by_id(organization, run_id)
    _require_change(actor)
    if run.status != RunStatus.FAILED:
        raise ValidationError(f"Only failed runs can be replayed; this one is {run.status}.")
    return runs.replay(run)


def run_now(
    organization: Organization, *, actor: Actor | Membership, processflow_id: int
) -> tuple[Deployment, bool]:
    """Poll a deployed polling flow now, besides its schedule; returns the deployment and
    whether the poll reached the broker."""
    flow = access_processflow_by_id(organization, processflow_id)
    _require_change(actor)
    if flow.trigger_type != TriggerType.POLLING:
        raise ValidationError(
            "Only polling processflows run on demand; a triggered one runs when its "
            "application calls the Processflow URL."
        )
    deployment = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
    if deployment is None:
        raise ValidationError("Deploy the processflow before running it.")
    return deployment, dispatch.poll_now(deployment.organization_id, deployment.pk)
