"""The processflow work that goes through the broker, by task name.

``tasks.py`` defines the tasks under these names; everything else publishes through the
functions here, so nothing but Celery imports the task module. Each message carries the
organization of the row it names, so that the task reads it through ``for_tenant``.
"""

from __future__ import annotations

from portal.agents.wake import wake
from portal.queues import enqueue

PROCESS_EVENT = "portal.intake.process_event"
EXECUTE_RUN = "portal.actions.execute_run"
REGISTER_SUBSCRIPTION = "portal.actions.register_subscription"
REMOVE_SUBSCRIPTION = "portal.actions.remove_subscription"
POLL = "portal.actions.poll"
SWEEP = "portal.maintenance.sweep"
RECONCILE_SUBSCRIPTIONS = "portal.maintenance.reconcile_subscriptions"


def publish_events(events: list[tuple[int, int]]) -> int:
    """Send ``process_event`` for each ``(organization_id, event_id)``; returns how many
    reached the broker.

    Never raises, and stops at the first failure: with the broker down every further try
    would only wait for its own timeout. What was not sent stays pending for the sweeper.
    """
    sent = 0
    for organization_id, event_id in events:
        if not enqueue(PROCESS_EVENT, organization_id, event_id):
            break
        sent += 1
    return sent


_UNKNOWN = object()


def publish_run(
    organization_id: int, run_id: int, *, countdown: float = 0, agent_group_id=_UNKNOWN
) -> bool:
    """Queue a run for execution; False (logged) if the broker is unreachable.

    A run of a deployment on an on-premise agent group never goes to Celery: its agents
    take it themselves (long-poll), so this wakes them instead. Callers that know the
    deployment's ``agent_group_id`` (None: the Cloud agent) pass it and save a query.
    """
    if agent_group_id is _UNKNOWN:
        from portal.processflows.models import Run

        agent_group_id = (
            Run.objects.for_tenant(organization_id)
            .filter(pk=run_id)
            .values_list("deployment__agent_group_id", flat=True)
            .first()
        )
    if agent_group_id is not None:
        return wake(agent_group_id)
    return enqueue(EXECUTE_RUN, organization_id, run_id, countdown=countdown)


def register_subscription(organization_id: int, deployment_id: int) -> bool:
    """Queue the registration of a deployment's webhook subscription."""
    return enqueue(REGISTER_SUBSCRIPTION, organization_id, deployment_id)


def remove_subscription(organization_id: int, deployment_id: int) -> bool:
    """Queue the removal of an undeployed deployment's webhook subscription."""
    return enqueue(REMOVE_SUBSCRIPTION, organization_id, deployment_id)


def poll_now(organization_id: int, deployment_id: int) -> bool:
    """Queue one poll of a polling deployment (run now); False if the broker is down."""
    return enqueue(POLL, organization_id, deployment_id)
