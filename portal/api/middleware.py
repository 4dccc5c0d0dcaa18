"""Refuses oversized request bodies before any view reads them."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from portal.api.errors import error_response


class RequestSizeLimitMiddleware:
    """Answer 413 to a request whose declared body is larger than the configured limit.

    Django enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only when a view parses form data, and
    then with a 400; declaring the size up front lets every endpoint, including the raw-body
    webhook intake, refuse large bodies early and say why.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            message = f"The request body is larger than the limit of {limit} bytes."
            if request.path.startswith("/api/"):
                return error_response(413, message)
            return HttpResponse(message, status=413, content_type="text/plain")
        return self.get_response(request)
