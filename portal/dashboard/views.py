from django.shortcuts import render

from portal.tenancy.access import tenant_view
from portal.tenancy.selectors import list_memberships, list_pending_invitations


@tenant_view
def index(request):
    """The organization at a glance."""
    organization = request.organization
    return render(
        request,
        "dashboard/index.html",
        {
            "member_count": list_memberships(organization).count(),
            "invitation_count": list_pending_invitations(organization).count(),
        },
    )
