"""Reads of processflow data, tenant-scoped; another tenant's object is a 404."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.processflows.models import (
    Deployment,
    Processflow,
    RejectedDelivery,
    Run,
    TriggerEvent,
)
from portal.tenancy.models import Organization


def list_processflows(organization: Organization) -> QuerySet[Processflow]:
    return Processflow.objects.for_tenant(organization)


def access_processflow_by_id(
    organization: Organization, processflow_id, *, for_update=False
) -> Processflow:
    flows = Processflow.objects.for_tenant(organization).select_related("organization")
    if for_update:
        flows = flows.select_for_update(of=("self",))
    return get_object_or_404(flows, pk=processflow_id)


def active_deployment(processflow: Processflow) -> Deployment | None:
    return (
        Deployment.objects.filter(processflow=processflow, state=Deployment.State.ACTIVE)
        .select_related("version")
        .first()
    )


def active_deployments(organization: Organization) -> dict[int, Deployment]:
    """Active deployments by processflow id, in one query (for lists)."""
    return {
        d.processflow_id: d
        for d in Deployment.objects.for_tenant(organization)
        .filter(state=Deployment.State.ACTIVE)
        .select_related("version")
    }


def list_runs(
    organization: Organization,
    *,
    processflow: Processflow | None = None,
    status: str | None = None,
    since=None,
    until=None,
) -> QuerySet[Run]:
    runs = Run.objects.for_tenant(organization).select_related("processflow", "version")
    if processflow is not None:
        runs = runs.filter(processflow=processflow)
    if status:
        runs = runs.filter(status=status)
    if since:
        runs = runs.filter(created_at__gte=since)
    if until:
        runs = runs.filter(created_at__lt=until)
    return runs


def access_run_by_id(organization: Organization, run_id) -> Run:
    return get_object_or_404(
        Run.objects.for_tenant(organization).select_related("processflow", "version", "event"),
        pk=run_id,
    )


def list_events(
    organization: Organization, *, processflow: Processflow | None = None
) -> QuerySet[TriggerEvent]:
    events = TriggerEvent.objects.for_tenant(organization).select_related("deployment__processflow")
    if processflow is not None:
        events = events.filter(deployment__processflow=processflow)
    return events.defer("body")


def access_event_by_id(organization: Organization, event_id) -> TriggerEvent:
    return get_object_or_404(
        TriggerEvent.objects.for_tenant(organization).select_related("deployment__processflow"),
        pk=event_id,
    )


def list_rejections(
    organization: Organization, *, processflow: Processflow | None = None
) -> QuerySet[RejectedDelivery]:
    rejections = RejectedDelivery.objects.for_tenant(organization).select_related(
        "deployment__processflow"
    )
    if processflow is not None:
        rejections = rejections.filter(deployment__processflow=processflow)
    return rejections


def runs_last_24h_by_status(organization: Organization) -> dict[str, int]:
    """The dashboard tile: runs created in the last 24 hours, counted by status."""
    since = timezone.now() - timedelta(hours=24)
    rows = (
        Run.objects.for_tenant(organization)
        .filter(created_at__gte=since)
        .values("status")
        .annotate(n=Count("pk"))
    )
    return {row["status"]: row["n"] for row in rows}
