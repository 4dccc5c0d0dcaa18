"""The portal's URLs plus ``/bench/bare/``: the cheapest Django view there is (no database,
no template) answering a POST through the same middleware stack as ``/hooks/<id>/``, so a
benchmark can compare the two on the same server in the same run."""

from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def bare(request):
    """Read the body (as intake does) and answer 202."""
    request.body  # noqa: B018
    return HttpResponse(b'{"status": "accepted"}', status=202, content_type="application/json")


urlpatterns = [
    path("bench/bare/", bare),
    path("", include("portal.urls")),
]
