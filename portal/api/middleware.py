"""Refuses, before any view reads them, request bodies that are too large and input that
the database cannot store."""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from portal.api.errors import error_body, error_response


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


# Characters PostgreSQL cannot store in text or jsonb: NUL, and (in JSON, where they can be
# written as escapes) unpaired UTF-16 surrogates. No legitimate input holds either.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_JSON_TYPE = re.compile(r"^application/([\w.+-]+\+)?json$")


def unstorable_path(value, where: str = "") -> str | None:
    """Where in a parsed JSON value a string (or key) holds an unstorable character, as a
    path like ``definition.steps[0].mapping.email``; None when there is none."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                return path or "(the body)"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if UNSTORABLE.search(key):
                    return child_path
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{n}]") for n, child in enumerate(item))
    return None


class UnstorableInputMiddleware:
    """Refuse input holding a NUL character (or, in JSON, an unpaired surrogate) before any
    view, form, serializer or query sees it.

    PostgreSQL stores neither in text or jsonb columns: such a value used to reach the
    database and come back as a 500 (a query filter, a saved mapping), or as a 503 from
    webhook intake, whose database errors mean "retry later". Checking every way in here,
    once, spares each view: the URL path (404: nothing is named so), query parameters,
    header values (intake keeps some), form fields and JSON bodies (400 naming the input,
    in the API's error format on ``/api/`` and ``/hooks/``, plain text on pages).

    Webhook bodies (``/hooks/``) are left to intake, which must verify the signature over
    the raw body before anything else: it refuses a verified body holding these characters
    with a 400 that names the reason, and records the refusal (see
    ``processflows.intake._parse``), so the sender is told and the operator can see it;
    nothing is half-stored.
    """

    NUL = "holds a NUL character, which is never valid input."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info:
            return self._refuse(request, 404, "Not found.")
        problem = self._problem(request)
        if problem is not None:
            where, message = problem
            return self._refuse(request, 400, message, fields={where: [message]})
        return self.get_response(request)

    def _problem(self, request) -> tuple[str, str] | None:
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return name, f"The query parameter {name!r} {self.NUL}"
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                header = key[5:].replace("_", "-").title()
                return header, f"The header {header} {self.NUL}"
        if request.method in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/hooks/"):
            return None
        content_type = request.content_type or ""
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for name, values in request.POST.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    return name, f"The field {name!r} {self.NUL}"
        elif _JSON_TYPE.match(content_type):
            return self._json_problem(request.body)
        return None

    def _json_problem(self, body: bytes) -> tuple[str, str] | None:
        # In valid JSON both can only be written as \u escapes (a raw NUL is invalid JSON,
        # and strict UTF-8 has no surrogates), so most bodies are never parsed here.
        if b"\\u" not in body:
            return None
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return None  # not JSON (or absurdly deep): the view's parser answers that
        where = unstorable_path(document)
        if where is None:
            return None
        return where, (
            f"The value at {where} holds a NUL character or an unpaired surrogate, "
            "which is never valid input."
        )

    def _refuse(self, request, status: int, message: str, *, fields=None) -> HttpResponse:
        if request.path.startswith(("/api/", "/hooks/")):
            code = "invalid" if status == 400 else None
            body = error_body(status, message, code=code, fields=fields)
            return JsonResponse(body, status=status)
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
