import ipaddress

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from portal.ops.backlog import BacklogCollector
from portal.ops.health import report
from portal.ops.metrics import DIRECTORY


@never_cache
@require_GET
def healthz(request):
    """Database, broker and worker reachability as JSON.

    503 when the database is unreachable (this process cannot serve); with ``?strict=1``,
    503 unless everything is reachable (for a probe that also wants workers up).
    """
    result = report()
    strict = request.GET.get("strict") in {"1", "true", "yes"}
    failing = result["status"] == "down" or (strict and result["status"] != "ok")
    return JsonResponse(result, status=503 if failing else 200)


def _metrics_allowed(request) -> bool | None:
    """True when the request may read /metrics; False when it may not but the endpoint is
    on (a token is set); None when the endpoint is off for it (no token set)."""
    token = settings.PORTAL_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and constant_time_compare(given.strip(), token):
            return True
    try:
        # The peer's own address: a header a client writes itself proves nothing.
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        peer = None
    if peer is not None and any(
        peer in ipaddress.ip_network(allowed, strict=False)
        for allowed in settings.PORTAL_METRICS_ALLOWED_ADDRESSES
    ):
        return True
    return False if token else None


@never_cache
@require_GET
def metrics(request):
    """Prometheus metrics of the whole installation (every process's counters, the backlog).

    Answered to ``Authorization: Bearer <PORTAL_METRICS_TOKEN>`` or to a peer address in
    ``PORTAL_METRICS_ALLOWED_ADDRESSES``; otherwise 401 if a token is set, else 404.
    """
    allowed = _metrics_allowed(request)
    if allowed is None:
        raise Http404
    if not allowed:
        response = HttpResponse("A metrics token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(DIRECTORY))
    registry.register(BacklogCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
