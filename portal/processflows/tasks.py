"""Celery tasks: thin wrappers that fetch by id and call a service.

Queues (see portal/celery.py): ``portal.intake.*`` on intake, ``portal.actions.*`` on
actions, ``portal.maintenance.*`` on maintenance. A task that names a row takes the row's
organization first, and reads the row through ``for_tenant`` (see ``dispatch``).
"""

from __future__ import annotations

import logging

from celery import shared_task, signals

from portal.processflows import dispatch, execution, outbox, polling, registration, runs
from portal.processflows.models import Deployment

logger = logging.getLogger(__name__)

REGISTRATION_RETRIES = 6


def _without_organization(task: str, row_id: int) -> None:
    # A message queued before messages carried their organization: the row's id alone. What
    # it asked for is still due in the database, so the sweeper, the reconciler or the
    # schedule sends it again in the new form: dropping it loses nothing.
    logger.info("%s(%s): a message without its organization, skipped", task, row_id)


def _deployment(organization_id: int, deployment_id: int) -> Deployment | None:
    return (
        Deployment.objects.for_tenant(organization_id)
        .select_related("version", "processflow__organization")
        .filter(pk=deployment_id)
        .first()
    )


@shared_task(name=dispatch.PROCESS_EVENT)
def process_event(organization_id: int, event_id: int | None = None) -> int | None:
    """Turn an accepted event into its run (once) and queue the run."""
    if event_id is None:
        return _without_organization(dispatch.PROCESS_EVENT, organization_id)
    run = runs.start_run_for_event(organization_id, event_id)
    return run.pk if run else None


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _finish_runs_on_threads(**kwargs) -> None:
    """A worker stopping (warm shutdown) first finishes the runs its threads execute."""
    execution.stop_threads()


@shared_task(name=dispatch.PROCESS_EVENTS)
def process_events(events: list[list[int]]) -> int:
    """Turn a batch of accepted events ``[organization_id, event_id]`` into their runs (once
    each) and start executing them here, without another trip through the broker; returns
    how many this worker took. It ends once each run has a thread (``execute_many``). A run
    it cannot take (held by another worker, not due) is queued."""
    waiting = runs.start_runs_for_events([(org, event) for org, event in events])
    refs = []
    for run in waiting:
        group_id = run.deployment.agent_group_id if run.deployment_id else None
        if group_id is None:
            refs.append((run.organization_id, run.pk))
        else:  # an on-premise agent of the group takes it
            dispatch.publish_run(run.organization_id, run.pk, agent_group_id=group_id)
    left = execution.execute_many(refs, wait=False, known={run.pk: run for run in waiting})
    for organization_id, run_id in left:
        dispatch.publish_run(organization_id, run_id)
    return len(refs) - len(left)


@shared_task(name=dispatch.EXECUTE_RUN)
def execute_run(organization_id: int, run_id: int | None = None) -> str | None:
    """Execute a run's steps, if this worker can claim it."""
    if run_id is None:
        return _without_organization(dispatch.EXECUTE_RUN, organization_id)
    return execution.execute(organization_id, run_id)


@shared_task(name=dispatch.REGISTER_SUBSCRIPTION, bind=True)
def register_subscription(
    self, organization_id: int, deployment_id: int | None = None
) -> str | None:
    """Subscribe a deployment's Processflow URL at its application; an outage is retried
    with backoff (the state shows failed with the reason meanwhile)."""
    if deployment_id is None:
        return _without_organization(dispatch.REGISTER_SUBSCRIPTION, organization_id)
    deployment = _deployment(organization_id, deployment_id)
    if deployment is None:
        return None
    try:
        return registration.register(deployment)
    except registration.RegistrationUnavailable as error:
        if self.request.retries >= REGISTRATION_RETRIES:
            return "failed"  # the reconciler keeps trying
        raise self.retry(countdown=min(600, 10 * 2**self.request.retries)) from error


@shared_task(name=dispatch.REMOVE_SUBSCRIPTION)
def remove_subscription(organization_id: int, deployment_id: int | None = None) -> str | None:
    """Delete an undeployed deployment's subscription at its application."""
    if deployment_id is None:
        return _without_organization(dispatch.REMOVE_SUBSCRIPTION, organization_id)
    deployment = _deployment(organization_id, deployment_id)
    return registration.unregister(deployment) if deployment else None


@shared_task(name=dispatch.POLL)
def poll(organization_id: int, deployment_id: int | None = None) -> int:
    """One poll of a polling deployment's source."""
    if deployment_id is None:
        _without_organization(dispatch.POLL, organization_id)
        return 0
    return polling.poll(organization_id, deployment_id)


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
