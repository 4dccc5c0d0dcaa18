"""The processflow work that goes through the broker, by task name.

``tasks.py`` defines the tasks under these names; everything else publishes through the
functions here, so nothing but Celery imports the task module.
"""

from __future__ import annotations

from portal.queues import enqueue

PROCESS_EVENT = "portal.intake.process_event"
EXECUTE_RUN = "portal.actions.execute_run"
REGISTER_SUBSCRIPTION = "portal.actions.register_subscription"
REMOVE_SUBSCRIPTION = "portal.actions.remove_subscription"
POLL = "portal.actions.poll"
SWEEP = "portal.maintenance.sweep"
RECONCILE_SUBSCRIPTIONS = "portal.maintenance.reconcile_subscriptions"


def publish_events(event_ids: list[int]) -> int:
    """Send ``process_event`` for each event; returns how many reached the broker.

    Never raises, and stops at the first failure: with the broker down every further try
    would only wait for its own timeout. What was not sent stays pending for the sweeper.
    """
    sent = 0
    for event_id in event_ids:
        if not enqueue(PROCESS_EVENT, event_id):
            break
        sent += 1
    return sent


def publish_run(run_id: int, *, countdown: float = 0) -> bool:
    """Queue a run for execution; False (logged) if the broker is unreachable."""
    return enqueue(EXECUTE_RUN, run_id, countdown=countdown)


def register_subscription(deployment_id: int) -> bool:
    """Queue the registration of a deployment's webhook subscription."""
    return enqueue(REGISTER_SUBSCRIPTION, deployment_id)


def remove_subscription(deployment_id: int) -> bool:
    """Queue the removal of an undeployed deployment's webhook subscription."""
    return enqueue(REMOVE_SUBSCRIPTION, deployment_id)


def poll_now(deployment_id: int) -> bool:
    """Queue one poll of a polling deployment (run now); False if the broker is down."""
    return enqueue(POLL, deployment_id)
