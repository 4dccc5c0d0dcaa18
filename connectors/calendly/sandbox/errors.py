"""Calendly's error bodies, raised as exceptions so handlers can stop anywhere.

Titles and messages are the ones Calendly documents (FACTS.md and the OpenAPI document's
``components/responses``); a client's error handling should meet exactly these strings here.
"""

from __future__ import annotations

from typing import Any

INVALID_ARGUMENT = ("Invalid Argument", "The supplied parameters are invalid.")
UNAUTHENTICATED = ("Unauthenticated", "The access token is invalid")
PERMISSION_DENIED = ("Permission Denied", "You do not have permission to access this resource.")
NOT_FOUND = ("Resource Not Found", "The server could not find the requested resource.")
ALREADY_EXISTS = ("Already Exists", "Hook with this url already exists")
TOO_MANY_REQUESTS = (
    "Too Many Requests",
    "You have exceeded the rate limit. Please try again later.",
)
INTERNAL_ERROR = (
    "Internal Server Error",
    "The server encountered an unexpected condition that prevented it from fulfilling the request.",
)
# Titles for injected upstream failures, in the same shape as Calendly's own errors.
STATUS_TITLES = {
    500: INTERNAL_ERROR,
    502: ("Bad Gateway", "The server received an invalid response from an upstream server."),
    503: ("Service Unavailable", "The server is temporarily unable to handle the request."),
    504: ("Gateway Timeout", "The server did not receive a timely response from upstream."),
}


class ApiError(Exception):
    """An HTTP error answer in Calendly's ``ErrorResponse`` shape."""

    def __init__(
        self,
        status: int,
        title: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {message}")
        self.status = status
        self.title = title
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"title": self.title, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def invalid(details: list[dict[str, str]]) -> ApiError:
    return ApiError(400, *INVALID_ARGUMENT, details=details)


def unauthenticated() -> ApiError:
    return ApiError(401, *UNAUTHENTICATED)


def forbidden(message: str = PERMISSION_DENIED[1]) -> ApiError:
    return ApiError(403, PERMISSION_DENIED[0], message)


def not_found() -> ApiError:
    return ApiError(404, *NOT_FOUND)


def error_body(status: int) -> dict[str, str]:
    """A Calendly-looking body for an injected status (unknown statuses get a generic one)."""
    title, message = STATUS_TITLES.get(status, (f"HTTP {status}", "The request failed."))
    return {"title": title, "message": message}
