"""Celery tasks: thin wrappers that fetch by id and call a service.

Queues (see portal/celery.py): ``portal.intake.*`` on intake, ``portal.actions.*`` on
actions, ``portal.maintenance.*`` on maintenance.
"""

from __future__ import annotations

from celery import shared_task

from portal.processflows import dispatch, execution, outbox, polling, registration, runs
from portal.processflows.models import Deployment

REGISTRATION_RETRIES = 6


def _deployment(deployment_id: int) -> Deployment | None:
    return (
        Deployment.objects.select_related("version", "processflow__organization")
        .filter(pk=deployment_id)
        .first()
    )


@shared_task(name=dispatch.PROCESS_EVENT)
def process_event(event_id: int) -> int | None:
    """Turn an accepted event into its run (once) and queue the run."""
    run = runs.start_run_for_event(event_id)
    return run.pk if run else None


@shared_task(name=dispatch.EXECUTE_RUN)
def execute_run(run_id: int) -> str | None:
    """Execute a run's steps, if this worker can claim it."""
    return execution.execute(run_id)


@shared_task(name=dispatch.REGISTER_SUBSCRIPTION, bind=True)
def register_subscription(self, deployment_id: int) -> str | None:
    """Subscribe a deployment's Processflow URL at its application; an outage is retried
    with backoff (the state shows failed with the reason meanwhile)."""
    deployment = _deployment(deployment_id)
    if deployment is None:
        return None
    try:
        return registration.register(deployment)
    except registration.RegistrationUnavailable as error:
        if self.request.retries >= REGISTRATION_RETRIES:
            return "failed"  # the reconciler keeps trying
        raise self.retry(countdown=min(600, 10 * 2**self.request.retries)) from error


@shared_task(name=dispatch.REMOVE_SUBSCRIPTION)
def remove_subscription(deployment_id: int) -> str | None:
    """Delete an undeployed deployment's subscription at its application."""
    deployment = _deployment(deployment_id)
    return registration.unregister(deployment) if deployment else None


@shared_task(name=dispatch.POLL)
def poll(deployment_id: int) -> int:
    """One poll of a polling deployment's source."""
    return polling.poll(deployment_id)


@shared_task(name=dispatch.SWEEP)
def sweep() -> dict:
    """Re-publish overdue outbox entries and runs whose worker died."""
    return outbox.sweep()


@shared_task(name=dispatch.RECONCILE_SUBSCRIPTIONS)
def reconcile_subscriptions() -> dict:
    """Compare every active subscription with the application's and repair drift."""
    results: dict[str, int] = {}
    for deployment in registration.deployments_to_reconcile().select_related(
        "version", "processflow__organization"
    ):
        outcome = registration.reconcile(deployment)
        results[outcome] = results.get(outcome, 0) + 1
    for deployment in registration.removals_to_retry().select_related(
        "version", "processflow__organization"
    ):
        outcome = "removed" if registration.unregister(deployment) == "removed" else "failed"
        results[outcome] = results.get(outcome, 0) + 1
    return results
