"""Top-level URLs: the portal's pages, the API, webhook intake, health, admin."""

from django.contrib import admin
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import include, path
from django.views.generic import RedirectView

from portal.accounts.views import admin_login
from portal.api.errors import error_body
from portal.ops.views import healthz
from portal.tenancy.views import home

urlpatterns = [
    # First: webhook intake (/hooks/<id>/) is the busiest route, resolved before the rest.
    path("", include("portal.processflows.urls")),
    path("", home, name="home"),
    path("accounts/", include("portal.accounts.urls")),
    path("", include("portal.tenancy.urls")),
    path("", include("portal.dashboard.urls")),
    path("", include("portal.api.page_urls")),
    path("", include("portal.vault.urls")),
    path("", include("portal.notifications.urls")),
    path("", include("portal.agents.urls")),
    path("api/", include("portal.api.urls")),
    path("healthz", healthz, name="healthz"),
    # The admin has no login or password page of its own: the portal's pages and their lockout.
    path("admin/login/", admin_login),
    path("admin/password_change/", RedirectView.as_view(pattern_name="accounts:password_change")),
    path("admin/", admin.site.urls),
]

_MESSAGES = {
    400: "The request is invalid.",
    403: "You do not have permission to do that.",
    404: "Not found.",
    500: "Something went wrong on our side; it has been logged.",
}


def _machine_path(request) -> bool:
    return request.path.startswith(("/api/", "/hooks/"))


def _handler(status: int):
    def handle(request, exception=None):
        message = _MESSAGES[status]
        if status == 403 and exception is not None and str(exception):
            message = str(exception)
        if _machine_path(request):
            return JsonResponse(error_body(status, message), status=status)
        return render(request, "error.html", {"status": status, "message": message}, status=status)

    return handle


handler400 = _handler(400)
handler403 = _handler(403)
handler404 = _handler(404)
handler500 = _handler(500)
