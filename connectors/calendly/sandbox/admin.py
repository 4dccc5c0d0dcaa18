"""The sandbox's own control API under ``/_sandbox/`` (not Calendly's; no auth; loopback only).

It mirrors the Python API so that other processes (the portal, Celery workers, benchmarks) can
drive a sandbox they did not start: fire webhook events, reset, add or revoke tokens, change the
rate limit, inject faults, disable a subscription, and read deliveries and subscriptions.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from .seed import OWNER_USER_UUID


class Sandbox(Protocol):
    """What the control API drives (``CalendlySandbox`` is one): its Python API, by name."""

    url: str

    def __getattr__(self, name: str) -> Any: ...


_DISABLE = re.compile(r"^/_sandbox/webhook_subscriptions/([^/]+)/disable$")


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bad(message: str) -> AdminError:
    return AdminError(400, message)


class AdminApi:
    """Answers admin requests with (status, JSON-serialisable body)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def __call__(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        try:
            return self._route(method, path.rstrip("/") or "/", query, body)
        except AdminError as error:
            title = "Invalid Argument" if error.status == 400 else "Resource Not Found"
            return error.status, {"title": title, "message": str(error)}
        except (ValueError, KeyError, TypeError) as error:
            return 400, {"title": "Invalid Argument", "message": str(error)}
        except TimeoutError as error:
            return 408, {"title": "Request Timeout", "message": str(error)}

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes):
        sb = self.sandbox
        route = (method, path)
        if route == ("GET", "/_sandbox"):
            return 200, {
                "url": sb.url,
                "tokens": sb.tokens,
                "organization_signing_key": sb.organization_signing_key,
            }
        if route == ("POST", "/_sandbox/reset"):
            sb.reset()
            return 200, {"reset": True}
        if route == ("POST", "/_sandbox/fire"):
            data = self._json(body)
            if "event" not in data:
                raise _bad("body needs an 'event'")
            ids = sb.fire(
                data["event"],
                user_uuid=data.get("user_uuid"),
                scheduled_event_uuid=data.get("scheduled_event_uuid"),
                invitee_uuid=data.get("invitee_uuid"),
                **(data.get("payload") or {}),
            )
            return 201, {"deliveries": ids}
        if route == ("GET", "/_sandbox/deliveries"):
            wait = query.get("wait", [None])[0]
            deliveries = sb.wait_for_deliveries(float(wait)) if wait else sb.deliveries
            return 200, {"collection": [d.describe() for d in deliveries]}
        if route == ("GET", "/_sandbox/subscriptions"):
            return 200, {"collection": sb.subscriptions}
        if route == ("GET", "/_sandbox/exchanges"):
            return 200, {"collection": [e.describe() for e in sb.exchanges]}
        if route == ("POST", "/_sandbox/tokens"):
            data = self._json(body)
            token = self._string(data, "token")
            sb.add_token(token, data.get("user_uuid") or OWNER_USER_UUID)
            return 201, {"token_added": True}
        if route == ("POST", "/_sandbox/tokens/revoke"):
            sb.revoke_token(self._string(self._json(body), "token"))
            return 200, {"token_revoked": True}
        if route == ("POST", "/_sandbox/rate_limit"):
            per_minute = self._json(body).get("per_minute")
            if not isinstance(per_minute, int):
                raise _bad("per_minute must be an integer")
            sb.set_rate_limit(per_minute)
            return 200, {"per_minute": per_minute}
        if route == ("POST", "/_sandbox/faults"):
            data = self._json(body)
            path_prefix = self._string(data, "path_prefix")
            kind = self._string(data, "kind")
            options = {k: v for k, v in data.items() if k not in ("path_prefix", "kind")}
            sb.inject_fault(path_prefix, kind, **options)
            return 201, {"fault_added": True}
        match = _DISABLE.match(path)
        if match and method == "POST":
            try:
                return 200, {"resource": sb.disable_subscription(match.group(1))}
            except LookupError:
                raise AdminError(404, f"no webhook subscription {match.group(1)}") from None
        raise AdminError(404, f"no admin endpoint {method} {path}")

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _bad("body must be JSON") from None
        if not isinstance(data, dict):
            raise _bad("body must be a JSON object")
        return data

    @staticmethod
    def _string(data: dict[str, Any], name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise _bad(f"{name!r} must be a non-empty string")
        return value
