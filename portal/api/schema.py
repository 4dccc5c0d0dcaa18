"""The OpenAPI schema's share of the API's conventions: bearer tokens and the error format.

Every operation documents the errors it can answer, in the common format of
``portal.api.errors``, so that a client (or a schema-driven test) finds every status code it
may receive in the schema, not only the happy path.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token created under Settings > API tokens.",
        }


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status code, repeated.")
    code = serializers.CharField(help_text="Stable for programs, e.g. not_found, invalid.")
    message = serializers.CharField(help_text="A sentence for a person.")
    fields = serializers.DictField(
        help_text="Input fields mapped to their problems, when the input was invalid."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


_ERRORS = {
    400: _error("The request is invalid: see message and fields."),
    401: _error("No valid credentials: send a personal API token as a bearer token."),
    403: _error("Your role (or a token) does not allow this."),
    404: _error("Not found, or not yours: another organization's objects are not found."),
    413: _error("The request body is larger than the limit."),
    415: _error("The request body's media type is not supported (send JSON)."),
    429: _error("Too many requests: retry after the number of seconds in Retry-After."),
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class PortalAutoSchema(AutoSchema):
    """drf-spectacular's schema, with the error responses each operation can give.

    Which ones follow from how the API is built rather than from each view: any request can
    be invalid (400: malformed input is refused before it reaches the database) or
    throttled (429); an authenticated view can answer 401; a write can be refused by role
    (403); a path with parameters, or a paginated list (``?page=`` past the end), can name
    something that is not there or not yours (404); a body can be too large (413) or of a
    type no parser reads (415). Views that answer other codes declare them with
    ``extend_schema(responses=...)``.
    """

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            responses.setdefault(
                str(status),
                self._get_response_for_code(_ERRORS[status], str(status), direction=direction),
            )
        return responses

    def _error_statuses(self) -> list[int]:
        statuses = [400, 429]
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            statuses.append(401)
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            statuses.append(403)
        if "{" in self.path or (self._is_list_view() and self._get_paginator()):
            statuses.append(404)
        if self.method in _BODY_METHODS:
            statuses += [413, 415]
        return sorted(statuses)
