"""Reads of processflow data, tenant-scoped; another tenant's object is a 404."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, DateTimeField, Min, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.agents import selectors as agent_selectors
from portal.processflows.models import (
    Deployment,
    Processflow,
    RejectedDelivery,
    Run,
    RunStatus,
    TriggerEvent,
    TriggerType,
)
from portal.tenancy.models import Organization


def list_processflows(organization: Organization) -> QuerySet[Processflow]:
    """The organization's processflows, by name."""
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
        processflow.deployments.filter(state=Deployment.State.ACTIVE)
        .select_related("version", "agent_group")
        .first()
    )


def active_deployments(organization: Organization) -> dict[int, Deployment]:
    """Active deployments by processflow id, in one query (for lists)."""
    return {
        d.processflow_id: d
        for d in Deployment.objects.for_tenant(organization)
        .filter(state=Deployment.State.ACTIVE)
        .select_related("version", "agent_group")
    }


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time (``2025-03-03T09:00`` from a form, or with an offset); a time
    without an offset is in the current time zone. None for an empty value; ValueError for
    anything else."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
    return parsed


@dataclass(frozen=True)
class RunFilters:
    """The run-history filters of a request, checked: what applies, and what was wrong."""

    processflow: Processflow | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    problems: dict[str, list[str]] | None = None

    def as_kwargs(self) -> dict:
        return {
            "processflow": self.processflow,
            "status": self.status,
            "since": self.since,
            "until": self.until,
        }


def run_filters(organization: Organization, params: Mapping[str, str]) -> RunFilters:
    """Read ``status``, ``processflow``, ``since`` and ``until`` from query parameters.

    Pages show the problems and apply the rest; the API answers 400 with them. Another
    tenant's processflow is not found (404), as everywhere.
    """
    problems: dict[str, list[str]] = {}
    status = (params.get("status") or "").strip() or None
    if status is not None and status not in RunStatus.values:
        problems["status"] = [f"Choose one of {', '.join(RunStatus.values)}."]
        status = None
    processflow = None
    flow_id = (params.get("processflow") or "").strip()
    if flow_id:
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if flow_id.isascii() and flow_id.isdigit():
            processflow = access_processflow_by_id(organization, int(flow_id))
        else:
            problems["processflow"] = ["A processflow is given by its id."]
    times = {}
    for name in ("since", "until"):
        try:
            times[name] = parse_time(params.get(name) or "")
        except ValueError:
            problems[name] = ["Give a time as ISO 8601, e.g. 2025-03-03T09:00:00Z."]
            times[name] = None
    if times["since"] and times["until"] and times["since"] >= times["until"]:
        problems["until"] = ["The end of the period comes after its start."]
        times["until"] = None
    return RunFilters(
        processflow=processflow,
        status=status,
        since=times["since"],
        until=times["until"],
        problems=problems or None,
    )


def list_runs(
    organization: Organization,
    *,
    processflow: Processflow | None = None,
    status: str | None = None,
    since=None,
    until=None,
) -> QuerySet[Run]:
    """Runs, newest first, optionally of one flow, with one status, created in a period."""
    runs = Run.objects.for_tenant(organization).select_related(
        "processflow", "version", "agent", "deployment__agent_group"
    )
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
        Run.objects.for_tenant(organization).select_related(
            "processflow", "version", "event", "agent", "deployment__agent_group"
        ),
        pk=run_id,
    )


def waiting_for_agents(run: Run, *, statuses: dict | None = None) -> str:
    """For a run still waiting on an on-premise agent group none of whose agents is online:
    "Waiting for agent group X, offline since …"; "" otherwise. ``statuses`` caches the
    message per group across a list."""
    if run.status not in (RunStatus.QUEUED, RunStatus.RETRYING) or run.deployment_id is None:
        return ""
    group = run.deployment.agent_group
    if group is None:
        return ""
    if statuses is not None and group.pk in statuses:
        return statuses[group.pk]
    message = agent_selectors.waiting_message(group)
    if statuses is not None:
        statuses[group.pk] = message
    return message


def list_events(
    organization: Organization, *, processflow: Processflow | None = None
) -> QuerySet[TriggerEvent]:
    """Accepted events, newest first, without their bodies."""
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


def run_buckets(organization: Organization, *, hours: int = 0, days: int = 0) -> list[dict]:
    """Runs that finished as succeeded or failed, counted per hour (the last ``hours``) or
    per day (the last ``days``), oldest first, in the current time zone; buckets without a
    run are there with zeros."""
    from django.db.models.functions import TruncDay, TruncHour

    now = timezone.localtime()
    if hours:
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
        keys = [start + timedelta(hours=n) for n in range(hours)]
        trunc = TruncHour("created_at", tzinfo=now.tzinfo)
    else:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
        keys = [start + timedelta(days=n) for n in range(days)]
        trunc = TruncDay("created_at", tzinfo=now.tzinfo)
    rows = (
        Run.objects.for_tenant(organization)
        .filter(created_at__gte=start, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
        .annotate(bucket=trunc)
        .values("bucket", "status")
        .annotate(n=Count("pk"))
    )
    counts: dict = {}
    for row in rows:
        counts[(row["bucket"], row["status"])] = row["n"]
    buckets = []
    for key in keys:
        succeeded = counts.get((key, RunStatus.SUCCEEDED), 0)
        failed = counts.get((key, RunStatus.FAILED), 0)
        label = key.strftime("%H:00") if hours else key.strftime("%d %b")
        buckets.append(
            {
                "label": label,
                "title": f"{label}: {succeeded} succeeded, {failed} failed",
                "succeeded": succeeded,
                "failed": failed,
            }
        )
    return buckets


def events_received(organization: Organization, *, hours: int = 24) -> int:
    """Accepted trigger events of the last ``hours``."""
    since = timezone.now() - timedelta(hours=hours)
    return TriggerEvent.objects.for_tenant(organization).filter(received_at__gte=since).count()


def recent_failures(organization: Organization, *, limit: int = 8) -> QuerySet[Run]:
    """The newest failed runs."""
    return list_runs(organization, status=RunStatus.FAILED)[:limit]


def deployments_needing_attention(organization: Organization) -> list[tuple[Deployment, str]]:
    """Active webhook deployments whose subscription failed, waits for a manual
    subscription, or keeps failing verification, and deployments on an agent group that is
    offline: ``(deployment, why)``."""
    from portal.processflows.models import RegistrationState

    deployments = list(
        Deployment.objects.for_tenant(organization)
        .filter(state=Deployment.State.ACTIVE, processflow__trigger_type=TriggerType.WEBHOOK)
        .select_related("processflow", "version")
    )
    verification = delivery_verification(organization, deployments=deployments)
    found = []
    for deployment in deployments:
        check = verification.get(deployment.pk)
        if check is not None and check.failing:
            found.append((deployment, check.message))
        elif deployment.registration_state in (RegistrationState.FAILED, RegistrationState.MANUAL):
            found.append(
                (
                    deployment,
                    f"{deployment.get_registration_state_display()}: "
                    f"{deployment.registration_message}",
                )
            )
    return found + _offline_agent_groups(organization, {d.pk for d, _ in found})


def _offline_agent_groups(organization: Organization, listed: set[int]) -> list:
    """Active deployments on an agent group none of whose agents is online."""
    messages: dict[int, str] = {}
    found = []
    for deployment in (
        Deployment.objects.for_tenant(organization)
        .filter(state=Deployment.State.ACTIVE, agent_group__isnull=False)
        .exclude(pk__in=listed)
        .select_related("processflow", "version", "agent_group")
    ):
        group = deployment.agent_group
        if group.pk not in messages:
            messages[group.pk] = agent_selectors.waiting_message(group)
        if messages[group.pk]:
            found.append(
                (deployment, messages[group.pk].replace("Waiting for", "Its runs wait for"))
            )
    return found


# --- Whether a webhook deployment's deliveries verify -------------------------------------------

#: How far back deliveries count for :func:`delivery_verification`.
VERIFICATION_WINDOW = timedelta(hours=24)
#: How many unverified deliveries in a row (and none accepted after them) make a deployment
#: "failing verification". More than one, so a single stray or forged request to a
#: Processflow URL does not raise the alarm; few enough that one event an application retries
#: (applications retry failed deliveries) shows the problem within minutes.
FAILING_AFTER = 3


@dataclass(frozen=True)
class DeliveryVerification:
    """How the recent deliveries of one webhook deployment fared.

    ``rejected`` counts the deliveries refused as unverified (401: no, a wrong or a stale
    signature) within :data:`VERIFICATION_WINDOW` and after the last accepted delivery of that
    window; ``failing`` is true once there are :data:`FAILING_AFTER` of them.
    """

    failing: bool
    rejected: int
    last_reason: str
    first_rejected_at: datetime | None
    last_accepted_at: datetime | None

    @property
    def message(self) -> str:
        """What pages and the API show while ``failing`` ("" otherwise)."""
        if not self.failing:
            return ""
        return (
            f"Failing verification: the last {self.rejected} deliveries were rejected "
            f"({self.last_reason}), and none was accepted since."
        )


def delivery_verification(
    organization: Organization, *, deployments: Iterable[Deployment]
) -> dict[int, DeliveryVerification]:
    """Whether the recent deliveries of webhook ``deployments`` verify, by deployment id
    (polling deployments are left out), in one query.

    *Recent*: within the last 24 hours (:data:`VERIFICATION_WINDOW`). A deployment is
    **failing verification** when, within that window, at least :data:`FAILING_AFTER` (3)
    deliveries were rejected as unverified (HTTP 401) and none was accepted after the first
    of them, i.e. its last 3 deliveries of the last 24 hours were all rejected. Rejections
    for other reasons (too large, not JSON) say nothing about the signing key and are not
    counted. An accepted delivery ends the streak; so does a quiet day.

    The one place this is decided: the flow pages, the processflow list and the API all ask
    here.
    """
    ids = [deployment.pk for deployment in deployments]
    if not ids:
        return {}
    since = timezone.now() - VERIFICATION_WINDOW
    accepted = (
        TriggerEvent.objects.for_tenant(organization)
        .filter(
            deployment=OuterRef("pk"),
            source=TriggerEvent.Source.WEBHOOK,
            received_at__gte=since,
        )
        .order_by("-received_at")
        .values("received_at")[:1]
    )
    unverified = RejectedDelivery.objects.for_tenant(organization).filter(
        deployment=OuterRef("pk"),
        status_code=401,
        received_at__gte=since,
        received_at__gt=Coalesce(
            OuterRef("last_accepted_at"), Value(since, output_field=DateTimeField())
        ),
    )
    rows = (
        Deployment.objects.for_tenant(organization)
        .filter(pk__in=ids, processflow__trigger_type=TriggerType.WEBHOOK)
        .annotate(last_accepted_at=Subquery(accepted))
        .annotate(
            rejected=Subquery(
                unverified.order_by().values("deployment").annotate(n=Count("pk")).values("n")
            ),
            first_rejected_at=Subquery(
                unverified.order_by().values("deployment").annotate(t=Min("received_at"))
                .values("t")
            ),
            last_reason=Subquery(unverified.order_by("-received_at", "-pk").values("reason")[:1]),
        )
        .values("pk", "last_accepted_at", "rejected", "first_rejected_at", "last_reason")
    )  # fmt: skip
    return {
        row["pk"]: DeliveryVerification(
            failing=(row["rejected"] or 0) >= FAILING_AFTER,
            rejected=row["rejected"] or 0,
            last_reason=row["last_reason"] or "",
            first_rejected_at=row["first_rejected_at"],
            last_accepted_at=row["last_accepted_at"],
        )
        for row in rows
    }
