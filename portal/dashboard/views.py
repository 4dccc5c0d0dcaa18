from django.shortcuts import render

from portal.processflows.models import RunStatus
from portal.processflows.selectors import runs_last_24h_by_status
from portal.tenancy.access import tenant_view
from portal.tenancy.selectors import list_memberships, list_pending_invitations


@tenant_view
def index(request):
    """The organization at a glance."""
    organization = request.organization
    counts = runs_last_24h_by_status(organization)
    return render(
        request,
        "dashboard/index.html",
        {
            "member_count": list_memberships(organization).count(),
            "invitation_count": list_pending_invitations(organization).count(),
            "runs_by_status": [
                (value, label, counts.get(value, 0)) for value, label in RunStatus.choices
            ],
        },
    )
