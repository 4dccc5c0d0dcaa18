"""One error format for every 4xx and 5xx the API answers::

    {"error": {"status": 404, "code": "not_found", "message": "Not found.", "fields": {}}}

``message`` is a sentence for a person; ``code`` is stable for programs; ``fields`` maps
input fields to their problems when the input was invalid.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    502: "bad_gateway",
    503: "unavailable",
}


def error_body(status: int, message: str, *, code: str | None = None, fields=None) -> dict:
    return {
        "error": {
            "status": status,
            "code": code or STATUS_CODES.get(status, "error"),
            "message": message,
            "fields": fields or {},
        }
    }


def error_response(status: int, message: str, *, code: str | None = None) -> JsonResponse:
    """A plain Django response in the API's error format, for errors outside DRF views."""
    return JsonResponse(error_body(status, message, code=code), status=status)


@csrf_exempt  # nothing to protect; a CSRF refusal here would be an HTML 403 for a 404
def not_found(request, *args, **kwargs) -> JsonResponse:
    """Unknown API paths answer in the API's format, in DEBUG too, whatever the method."""
    return error_response(404, "Not found.")


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _flatten(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten(value)]
    return [str(detail)]


def exception_handler(exc, context):
    """DRF's handler, with Django's own exceptions mapped and the body in the common format."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a 500: handled by portal.urls.handler500 in the same format

    detail = response.data
    fields = {}
    if isinstance(exc, exceptions.ValidationError):
        if isinstance(detail, dict):
            non_field = detail.pop("non_field_errors", None)
            fields = detail
            message = " ".join(_flatten(non_field)) if non_field else "Some fields are invalid."
            if not fields and not non_field:
                message = "The request is invalid."
        else:
            message = " ".join(_flatten(detail)) or "The request is invalid."
    elif isinstance(detail, dict) and "detail" in detail:
        message = str(detail["detail"])
    else:
        message = " ".join(_flatten(detail))
    code = getattr(getattr(exc, "detail", None), "code", None)
    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    response.data = error_body(response.status_code, message, code=code, fields=fields)
    return response
