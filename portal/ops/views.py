from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.ops.health import report


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
