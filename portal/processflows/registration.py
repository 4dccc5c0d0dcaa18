"""Webhook subscriptions at the application, registered on each tenant's behalf.

Each deployment of a triggered flow subscribes its Processflow URL with the subscription
options its application declares, and our own random signing key (or, for an application
that makes its own, the key it answers). "Already exists" (an application that refuses a
second subscription for one URL) is resolved by replacing the existing subscription, since
its signing key is unknown to us and deliveries signed with it could not be verified.
The reconciler repairs drift: subscriptions deleted or disabled at the
application, changed events, or a URL that moved because PORTAL_BASE_URL changed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

import flows
from flows.definition import application, trigger_options
from portal.agents import work as agent_work
from portal.processflows import alerting
from portal.processflows.models import Deployment, Processflow, RegistrationState, TriggerType
from portal.processflows.signing import new_signing_key, signing_key, store_signing_key
from portal.vault import calls
from portal.vault.models import Credential
from portal.vault.selectors import credential_for_use

logger = logging.getLogger(__name__)


def processflow_url(processflow: Processflow) -> str:
    """The Processflow URL the application calls: ``PORTAL_BASE_URL/hooks/<id>/``."""
    return f"{settings.PORTAL_BASE_URL}/hooks/{processflow.hook_id}/"


def _trigger_credential(deployment: Deployment) -> Credential | None:
    trigger = deployment.version.definition["trigger"]
    return credential_for_use(deployment.processflow.organization, trigger.get("credential"))


def _set(deployment: Deployment, state: str, message: str = "", **fields) -> None:
    deployment.registration_state = state
    deployment.registration_message = message
    for name, value in fields.items():
        setattr(deployment, name, value)
    deployment.save(
        update_fields=["registration_state", "registration_message", *fields,
                       "signing_data_key", "signing_key_ciphertext"]
    )  # fmt: skip
    if state == RegistrationState.FAILED:
        alerting.subscription_trouble(
            deployment, f"The webhook subscription could not be registered: {message}"
        )


def register(deployment: Deployment, *, repair: bool = False) -> str:
    """Create the subscription, replacing one that holds the same URL; returns the state.

    The signing key is stored (encrypted) before the application learns it, so a delivery
    that arrives the instant the subscription exists can already be verified. A deployment
    already subscribed at its URL is left alone (a redelivered task must not swap the key
    of a live subscription) unless the reconciler is ``repair``-ing it.
    """
    if deployment.state != Deployment.State.ACTIVE:
        return deployment.registration_state
    trigger = deployment.version.definition["trigger"]
    if trigger.get("registration") == "manual":
        return deployment.registration_state  # another processflow's step subscribes it
    if deployment.agent_group_id is not None:
        if deployment.registration_state == RegistrationState.ACTIVE and not repair:
            return RegistrationState.ACTIVE
        return agent_work.queue_subscribe(deployment)  # the agent holds the credential
    options = trigger_options(trigger)
    url = processflow_url(deployment.processflow)
    if (
        not repair
        and deployment.registration_state == RegistrationState.ACTIVE
        and deployment.subscription_uri
        and deployment.registered_url == url
    ):
        return RegistrationState.ACTIVE
    credential = _trigger_credential(deployment)
    if credential is None:
        _set(deployment, RegistrationState.FAILED, "The trigger's credential was deleted.")
        return RegistrationState.FAILED
    # The application makes the key itself, or we do (and store it before it learns it).
    ours = application(trigger["application"]).webhooks.signing_key_by == "portal"
    key = new_signing_key(deployment) if ours else None
    _set(deployment, RegistrationState.PENDING, "Registering the webhook subscription…")

    def subscribe(key):
        return calls.subscribe(
            credential, url=url, events=trigger["events"], options=options, signing_key=key
        )

    outcome = subscribe(key)
    replaced = False
    if not outcome.ok and outcome.already_exists:
        # Another subscription holds this URL (an earlier deployment, or one made by hand).
        # Its signing key is not this deployment's, so its deliveries could not be verified:
        # replace it rather than adopt it.
        removal = calls.remove_subscriptions_to(credential, url, options)
        if removal.ok:
            replaced = True
            outcome = subscribe(key)
        else:
            outcome = removal
    del key
    if outcome.ok and not ours:
        if not outcome.signing_key:
            outcome = calls.SubscriptionOutcome(
                ok=False, message="The application answered no signing key."
            )
        else:
            store_signing_key(deployment, outcome.signing_key)
            deployment.save(update_fields=["signing_data_key", "signing_key_ciphertext"])
    if not outcome.ok:
        _set(deployment, RegistrationState.FAILED, outcome.message)
        if outcome.retryable:
            raise RegistrationUnavailable(outcome.message)
        return RegistrationState.FAILED
    subscription_uri = outcome.subscription.get("uri", "")
    message = outcome.message
    if replaced:
        message += " It replaced a subscription that already existed for this URL."
    # Only a deployment still active takes the subscription: one undeployed meanwhile would
    # otherwise keep a subscription nothing removes.
    deployments = Deployment.objects.for_tenant(deployment.organization_id)
    taken = deployments.filter(pk=deployment.pk, state=Deployment.State.ACTIVE).update(
        registration_state=RegistrationState.ACTIVE,
        registration_message=message,
        subscription_uri=subscription_uri,
        registered_url=url,
        reconciled_at=timezone.now(),
    )
    if not taken:
        logger.info("deployment %s was undeployed while registering", deployment.pk)
        removed = calls.unsubscribe(credential, subscription_uri).ok
        # If that failed, the removal is retried by the reconciler (REMOVING with a URI).
        state = RegistrationState.REMOVED if removed else RegistrationState.REMOVING
        deployments.filter(pk=deployment.pk).update(
            registration_state=state,
            registration_message="Undeployed while the subscription was being registered.",
            subscription_uri="" if removed else subscription_uri,
        )
        deployment.refresh_from_db()
        return state
    deployment.refresh_from_db()
    return RegistrationState.ACTIVE


class RegistrationUnavailable(Exception):
    """The application could not be reached or asked us to slow down: try again later."""


def unregister(deployment: Deployment) -> str:
    """Delete the deployment's subscription at the application (gone already is fine)."""
    if deployment.agent_group_id is not None:
        return agent_work.queue_unsubscribe(deployment)
    if not deployment.subscription_uri:
        _set(deployment, RegistrationState.REMOVED, "Nothing was registered.")
        return RegistrationState.REMOVED
    credential = _trigger_credential(deployment)
    if credential is None:
        _set(
            deployment,
            RegistrationState.FAILED,
            "The credential was deleted, so the subscription could not be removed at the "
            "application; delete it there.",
        )
        return RegistrationState.FAILED
    outcome = calls.unsubscribe(credential, deployment.subscription_uri)
    if not outcome.ok:
        _set(deployment, RegistrationState.FAILED, outcome.message)
        return RegistrationState.FAILED
    _set(deployment, RegistrationState.REMOVED, outcome.message, subscription_uri="")
    return RegistrationState.REMOVED


def reconcile(deployment: Deployment) -> str:
    """Compare the application's subscriptions with what this deployment needs; repair.

    Returns ``ok``, ``repaired``, ``reported`` (a manual subscription is broken: the state
    says so, since subscribing is another flow's job), ``skipped`` (the application could not
    be asked) or ``failed``."""
    trigger = deployment.version.definition["trigger"]
    credential = _trigger_credential(deployment)
    if credential is None:
        _set(deployment, RegistrationState.FAILED, "The trigger's credential was deleted.")
        return "failed"
    listing = calls.list_subscriptions(credential, options=trigger_options(trigger))
    if not listing.ok:
        logger.warning("reconcile of deployment %s skipped: %s", deployment.pk, listing.message)
        return "skipped"
    url = processflow_url(deployment.processflow)
    ours = next(
        (s for s in listing.subscriptions if s.get("uri") == deployment.subscription_uri), None
    )
    problem = None
    if not deployment.subscription_uri:
        problem = "the subscription was never registered"
    elif ours is None:
        problem = "the subscription was deleted at the application"
    elif ours.get("state") != "active":
        problem = f"the subscription was {ours.get('state')} at the application"
    elif set(ours.get("events", [])) != set(_subscribed_events(trigger)):
        problem = "the subscription's events differ"
    elif ours.get("callback_url") != url:
        problem = "the Processflow URL changed (PORTAL_BASE_URL)"
    if problem is None:
        if deployment.registration_state != RegistrationState.ACTIVE:
            _set(deployment, RegistrationState.ACTIVE, "The subscription is active.")
        Deployment.objects.for_tenant(deployment.organization_id).filter(pk=deployment.pk).update(
            reconciled_at=timezone.now()
        )
        return "ok"
    logger.info("repairing deployment %s: %s", deployment.pk, problem)
    if deployment.subscription_uri:
        alerting.subscription_trouble(deployment, f"{problem[0].upper()}{problem[1:]}.")
    if ours is not None:
        calls.unsubscribe(credential, ours["uri"])
    if trigger.get("registration") == "manual":
        # The user chose to subscribe by hand: say what broke instead of subscribing.
        _set(
            deployment,
            RegistrationState.MANUAL,
            f"{problem[0].upper()}{problem[1:]}; run the processflow that subscribes this "
            "Processflow URL again.",
            subscription_uri="",
        )
        return "reported"
    try:
        state = register(deployment, repair=True)
    except RegistrationUnavailable:
        return "failed"  # the next reconciliation tries again
    if state == RegistrationState.ACTIVE:
        _set(deployment, state, f"Repaired: {problem}.")
    return "repaired" if state == RegistrationState.ACTIVE else "failed"


def _every_deployment():
    return Deployment.objects.unscoped("the reconciler checks every organization's webhooks")


def _subscribed_events(trigger: dict) -> list[str]:
    """What the application was asked to deliver for the trigger's events (the same, or
    the coarser topics an application subscribes to)."""
    return application(trigger["application"]).webhooks.subscription_events(trigger["events"])


def deployments_to_reconcile():
    """Active webhook deployments whose subscription should exist (or was lost on the way:
    a registration still pending long after deploying, its task lost with the broker)."""
    stale = timezone.now() - timedelta(seconds=settings.PORTAL_OUTBOX_REDELIVERY_SECONDS * 5)
    return (
        _every_deployment()
        .filter(
            state=Deployment.State.ACTIVE,
            processflow__trigger_type=TriggerType.WEBHOOK,
            # An agent group's subscriptions are made with credentials only its agents hold.
            agent_group__isnull=True,
        )
        .filter(
            Q(registration_state__in=[RegistrationState.ACTIVE, RegistrationState.FAILED])
            | Q(registration_state=RegistrationState.PENDING, deployed_at__lt=stale)
        )
    )


def removals_to_retry():
    """Undeployed deployments whose subscription was never confirmed deleted."""
    stale = timezone.now() - timedelta(seconds=settings.PORTAL_OUTBOX_REDELIVERY_SECONDS * 5)
    return (
        _every_deployment()
        .filter(
            state=Deployment.State.UNDEPLOYED,
            registration_state__in=[RegistrationState.REMOVING, RegistrationState.FAILED],
            undeployed_at__lt=stale,
        )
        .exclude(subscription_uri="")
    )


# --- The seed's manual way: another flow's "Create Webhook Subscription" step ------------------


def await_manual_subscription(deployment: Deployment) -> None:
    """Give a manually registered deployment its signing key at once: the step of another
    processflow that subscribes this flow's URL hands the key to the application."""
    new_signing_key(deployment)
    _set(
        deployment,
        RegistrationState.MANUAL,
        "Waiting for a Create Webhook Subscription step (in another processflow) to "
        "subscribe this Processflow URL.",
    )


def manual_target(organization_id: int, url: str, *, by: str) -> ManualSubscription | None:
    """The deployed flow of this organization whose Processflow URL ``url`` is, as the target
    of a step that subscribes it; None when ``url`` is no Processflow URL.

    Raises ``flows.CallbackUnavailable`` when the URL is a Processflow URL but no deployed
    flow of this organization answers it: a subscription made now could never be verified.
    """
    prefix = f"{settings.PORTAL_BASE_URL}/hooks/"
    if not url.startswith(prefix):
        return None
    hook_id = url[len(prefix) :].strip("/")
    target = (
        Deployment.objects.for_tenant(organization_id)
        .filter(
            processflow__hook_id=hook_id,
            processflow__trigger_type=TriggerType.WEBHOOK,
            state=Deployment.State.ACTIVE,
        )
        .select_related("processflow", "signing_data_key")
        .first()
    )
    if target is None:
        flow = Processflow.objects.for_tenant(organization_id).filter(hook_id=hook_id).first()
        raise flows.CallbackUnavailable(
            f"Deploy processflow {flow.name!r} before subscribing its URL."
            if flow is not None
            else f"No processflow of this organization has the Processflow URL {url}."
        )
    return ManualSubscription(target, by=by)


class ManualSubscription:
    """A deployed flow whose Processflow URL another flow's step subscribes (the seed's
    manual way), as the engine's ``flows.CallbackTarget``."""

    def __init__(self, deployment: Deployment, *, by: str):
        self.deployment = deployment
        self.url = processflow_url(deployment.processflow)
        self.by = by

    def signing_key(self) -> str:
        """The deployment's signing key (created if it has none yet), which the step hands
        to the application so that intake can verify what it delivers."""
        key = signing_key(self.deployment, purpose=f"handed to the application by {self.by}")
        if key is None:
            key = new_signing_key(self.deployment)
            self.deployment.save(update_fields=["signing_data_key", "signing_key_ciphertext"])
        return key

    def subscribed(self, subscription) -> None:
        """Remember the subscription the step created, so undeploy and the reconciler
        manage it."""
        _set(
            self.deployment,
            RegistrationState.ACTIVE,
            f"Subscribed by {self.by}.",
            subscription_uri=subscription.get("uri", ""),
            registered_url=subscription.get("callback_url", ""),
            reconciled_at=timezone.now(),
        )
