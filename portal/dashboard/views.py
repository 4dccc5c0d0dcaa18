from django.shortcuts import render

from portal.dashboard.charts import stacked_bars
from portal.processflows import selectors as flows
from portal.processflows.models import RunStatus
from portal.tenancy.access import tenant_view
from portal.tenancy.selectors import list_memberships, list_pending_invitations
from portal.vault.models import CredentialStatus
from portal.vault.selectors import list_credentials


@tenant_view
def index(request):
    """The organization at a glance: run trends, what failed, what needs attention."""
    organization = request.organization
    counts = flows.runs_last_24h_by_status(organization)
    hourly = flows.run_buckets(organization, hours=24)
    daily = flows.run_buckets(organization, days=14)
    return render(
        request,
        "dashboard/index.html",
        {
            "member_count": list_memberships(organization).count(),
            "invitation_count": list_pending_invitations(organization).count(),
            "runs_by_status": [
                (value, label, counts.get(value, 0)) for value, label in RunStatus.choices
            ],
            "events_24h": flows.events_received(organization),
            "hourly": stacked_bars(hourly, label_every=3),
            "daily": stacked_bars(daily, label_every=2),
            "failures": flows.recent_failures(organization),
            "credentials": list_credentials(organization)
            .select_related(None)
            .exclude(status=CredentialStatus.VALID)
            .only("id", "name", "application", "status", "status_message"),
            "deployments": flows.deployments_needing_attention(organization),
        },
    )
