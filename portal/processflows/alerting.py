"""What processflows tell the organization's alert rules: a run that failed for good, a
webhook subscription that is disabled, could not be registered or keeps failing
verification. One alert per flow and kind per quiet period (``notifications.alerts``)."""

from __future__ import annotations

from django.urls import reverse

from portal.notifications.alerts import raise_alert
from portal.notifications.models import AlertKind
from portal.processflows.models import Deployment, Processflow, Run
from portal.processflows.selectors import delivery_verification


def _flow_link(flow: Processflow) -> str:
    return reverse(
        "processflows:detail",
        kwargs={"org": flow.organization.slug, "processflow_id": flow.pk},
    )


def run_failed(run: Run, error: str) -> None:
    """A run failed and will not be retried."""
    flow = run.processflow
    raise_alert(
        run.organization_id,
        kind=AlertKind.RUN_FAILED,
        subject=f"processflow:{flow.pk}",
        title=f"Processflow {flow.name!r}: run #{run.pk} failed",
        message=error,
        link=reverse("processflows:run", kwargs={"org": flow.organization.slug, "run_id": run.pk}),
    )


def subscription_trouble(deployment: Deployment, message: str) -> None:
    """The deployment's webhook subscription is disabled, gone, not registered or failing."""
    flow = deployment.processflow
    raise_alert(
        deployment.organization_id,
        kind=AlertKind.SUBSCRIPTION,
        subject=f"processflow:{flow.pk}",
        title=f"Processflow {flow.name!r}: webhook subscription needs attention",
        message=message,
        link=_flow_link(flow),
    )


def check_verification(deployment: Deployment) -> None:
    """After a delivery was rejected as unverified: alert once the deployment is failing
    verification (its last deliveries were all rejected)."""
    verification = delivery_verification(deployment.organization, deployments=[deployment]).get(
        deployment.pk
    )
    if verification is not None and verification.failing:
        subscription_trouble(deployment, verification.message)
