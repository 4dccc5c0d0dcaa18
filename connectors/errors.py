"""Typed errors: every failure a connector can report, each with a message a person can act on.

Callers branch on the class (or on ``retryable``) and show ``str(error)`` verbatim. Messages are
built by the library from the API's own ``title``/``message``/``details`` after secrets were
scrubbed from them (see ``connectors.secrets.Scrubber``); they never contain request headers.

Hierarchy::

    ConnectorError
    ├── ApiError                  the API answered with an error status (carries status, title…)
    │   ├── AuthenticationFailed  401
    │   ├── PermissionDenied      403
    │   ├── NotFound              404
    │   ├── AlreadyExists         409 (e.g. a webhook subscription for that URL exists)
    │   └── RateLimited           429, or our own rate budget is used up (carries retry_after)
    ├── TransportError            the API could not be reached (DNS, refused, reset…)
    │   └── Timeout               connect or read timeout
    ├── InvalidResponse           an answer that is not what the API speaks (non-JSON, cut off)
    ├── UnsafeDestination         refused by the outbound network policy or a cross-host redirect
    ├── FilterError               the action's input is wrong (names the key, lists what is allowed)
    ├── InvalidCredentials        the credential lacks a field its type needs
    ├── UnknownAction / UnknownConnector / NotSupported
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .results import RequestSummary


class ConnectorError(Exception):
    """Base of every error the connectors library raises on purpose.

    ``retryable`` says whether the same call may succeed later unchanged (an outage, a rate
    limit), ``status`` is the HTTP status when there was one, and ``requests`` holds the
    summaries of the requests made before the failure (for run-step records).
    """

    retryable: bool = False
    status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        requests: Sequence[RequestSummary] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.requests: tuple[RequestSummary, ...] = tuple(requests)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    @property
    def attempts(self) -> int:
        """Attempts made by the last request before giving up (0 if none was sent)."""
        return self.requests[-1].attempts if self.requests else 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (for the CLI and the portal's run records)."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "status": self.status,
            "retryable": self.retryable,
        }


# The API answered with an error ---------------------------------------------------------------
class ApiError(ConnectorError):
    """The API answered with an error status; ``title``, ``api_message`` and ``details`` are the
    API's own words (secrets scrubbed). Subclasses name the statuses callers branch on."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        title: str | None = None,
        api_message: str | None = None,
        details: Sequence[Any] = (),
        retryable: bool | None = None,
        retry_after: float | None = None,
        requests: Sequence[RequestSummary] = (),
    ) -> None:
        if retryable is None:
            retryable = status >= 500 or status == 429
        super().__init__(message, status=status, retryable=retryable, requests=requests)
        self.title = title
        self.api_message = api_message
        self.details = list(details)
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data.update(title=self.title, api_message=self.api_message, details=self.details)
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        return data


class AuthenticationFailed(ApiError):
    """401: the credential was refused (invalid, revoked or expired)."""


class PermissionDenied(ApiError):
    """403: the credential is valid but may not do this (role, plan, another organization)."""


class NotFound(ApiError):
    """404: no such resource (or it is not visible to this credential)."""


class AlreadyExists(ApiError):
    """409: the resource exists already. For webhook subscriptions the caller can adopt or
    replace the existing subscription (list them, match the callback URL)."""


class RateLimited(ApiError):
    """429 (or our own rate budget): try again after ``retry_after`` seconds (None: unknown)."""

    retryable = True


# The API could not be reached or spoke nonsense -----------------------------------------------
class TransportError(ConnectorError):
    """The request did not get an HTTP answer: DNS failure, refused or reset connection."""

    retryable = True


class Timeout(TransportError):
    """Connecting or waiting for the answer took longer than the Runtime allows."""


class InvalidResponse(ConnectorError):
    """The answer was not what the API speaks: not JSON, cut off, or too large."""


class UnsafeDestination(ConnectorError):
    """The outbound network policy refused the destination (a private, loopback or
    cloud-metadata address, a URL with credentials in it), or the API redirected to another
    host, which would have taken the credential along."""


# The caller asked for something wrong ---------------------------------------------------------
class FilterError(ConnectorError):
    """The action's input is wrong; ``key`` names the offending key, ``allowed`` what would do."""

    def __init__(self, message: str, *, key: str | None = None, allowed: Sequence[str] = ()):
        super().__init__(message)
        self.key = key
        self.allowed = tuple(allowed)

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data.update(key=self.key, allowed=list(self.allowed))
        return data


class InvalidCredentials(ConnectorError):
    """The credential does not fit its type: unknown type, or a required field is missing."""


class UnknownAction(ConnectorError):
    """The connector has no action by that name."""


class UnknownConnector(ConnectorError):
    """No installed connector has that name."""


class NotSupported(ConnectorError):
    """The connector does not offer this feature (e.g. webhooks)."""


__all__ = [
    "AlreadyExists",
    "ApiError",
    "AuthenticationFailed",
    "ConnectorError",
    "FilterError",
    "InvalidCredentials",
    "InvalidResponse",
    "NotFound",
    "NotSupported",
    "PermissionDenied",
    "RateLimited",
    "Timeout",
    "TransportError",
    "UnknownAction",
    "UnknownConnector",
    "UnsafeDestination",
]
