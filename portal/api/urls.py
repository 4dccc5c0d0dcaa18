"""The API's URL root: ``/api/v1/`` plus the OpenAPI schema and its interactive docs.

Tenant-owned resources hang under ``organizations/<org>/``; each app contributes its routes
by adding a ``register`` line here (netbox-style), so the whole API reads in one file.
"""

from django.conf import settings
from django.urls import include, path, re_path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from portal.agents import transport
from portal.agents.api import AgentGroupViewSet, AgentViewSet
from portal.api.api import ApiTokenViewSet, MeView
from portal.api.errors import not_found
from portal.processflows.api import EventViewSet, ProcessflowViewSet, RunViewSet
from portal.tenancy.api import InvitationViewSet, MembershipViewSet, OrganizationViewSet
from portal.vault.api import ApplicationViewSet, CredentialViewSet, ExecuteActionView

organizations = SimpleRouter(trailing_slash=True)
organizations.register("organizations", OrganizationViewSet, basename="organization")
organizations.register("applications", ApplicationViewSet, basename="application")

# path()-style routes, so each viewset's lookup converter (TenantScopedMixin: int) applies.
tenant = SimpleRouter(trailing_slash=True, use_regex_path=False)
tenant.register("memberships", MembershipViewSet, basename="membership")
tenant.register("invitations", InvitationViewSet, basename="invitation")
tenant.register("tokens", ApiTokenViewSet, basename="token")
tenant.register("credentials", CredentialViewSet, basename="credential")
tenant.register("processflows", ProcessflowViewSet, basename="processflow")
tenant.register("runs", RunViewSet, basename="run")
tenant.register("events", EventViewSet, basename="event")
tenant.register("agents", AgentViewSet, basename="agent")
tenant.register("agent-groups", AgentGroupViewSet, basename="agent-group")

# The on-premise agent's transport: the agent program calls these with its own secret.
agent_transport = [
    path("register", transport.RegisterView.as_view(), name="agent-register"),
    path("heartbeat", transport.HeartbeatView.as_view(), name="agent-heartbeat"),
    path("jobs", transport.JobsView.as_view(), name="agent-jobs"),
    path("jobs/<str:job_id>/result", transport.JobResultView.as_view(), name="agent-job-result"),
    path("runs/<int:run_id>/report", transport.RunReportView.as_view(), name="agent-run-report"),
    path("runs/<int:run_id>/lease", transport.RunLeaseView.as_view(), name="agent-run-lease"),
]

app_name = "api"

urlpatterns = [
    path("v1/me/", MeView.as_view(), name="me"),
    path("v1/agent/", include(agent_transport)),
    path("v1/", include(organizations.urls)),
    path(
        "v1/organizations/<slug:org>/applications/<slug:application>/actions/<path:action>/execute/",
        ExecuteActionView.as_view(),
        name="execute-action",
    ),
    path("v1/organizations/<slug:org>/", include(tenant.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        # Swagger UI bootstraps itself with an inline script; allow it on this page only.
        csp_override({**settings.SECURE_CSP, "script-src": [CSP.SELF, CSP.UNSAFE_INLINE]})(
            SpectacularSwaggerView.as_view(url_name="api:schema")
        ),
        name="docs",
    ),
    # Unknown API paths answer in the API's error format, in DEBUG too.
    re_path(r"^", not_found),
]
