"""Every sandbox's control API under ``/_sandbox/`` (not the application's; no auth; loopback
only), so other processes (the portal, Celery workers, benchmarks) can drive a sandbox they
did not start: reset it, fire webhook events, add or revoke tokens, change the rate limit,
inject faults, and read deliveries and exchanges.

| request | does |
| --- | --- |
| ``GET /_sandbox/`` | URL and accepted tokens |
| ``POST /_sandbox/reset`` | back to the seed |
| ``POST /_sandbox/fire`` ``{"event", ...}`` | ``sandbox.fire(event, ...)``: ``{"deliveries"}`` |
| ``GET /_sandbox/deliveries[?wait=<s>]``, ``GET /_sandbox/exchanges`` | the journals |
| ``POST /_sandbox/tokens`` ``{"token", "user"}``, ``POST /_sandbox/tokens/revoke`` | tokens |
| ``POST /_sandbox/rate_limit`` ``{"per_minute"}`` | the budget per token and minute |
| ``POST /_sandbox/faults`` ``{"path_prefix", "kind", "times", ...}`` | inject a fault |
"""

from __future__ import annotations

import json
from typing import Any


class AdminApi:
    """Answers admin requests with (status, JSON-serialisable body)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox

    def __call__(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        try:
            return self._route(method, path.rstrip("/") or "/", query, body)
        except LookupError as error:
            return 404, {"message": str(error)}
        except (ValueError, TypeError) as error:
            return 400, {"message": str(error)}
        except TimeoutError as error:
            return 408, {"message": str(error)}

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes):
        sb = self.sandbox
        route = (method, path.removeprefix("/_sandbox"))
        if route == ("GET", ""):
            return 200, {"url": sb.url, "tokens": dict(sb.tokens)}
        if route == ("POST", "/reset"):
            sb.reset()
            return 200, {"reset": True}
        if route == ("POST", "/fire"):
            data = _json(body)
            event = data.pop("event", None)
            if not isinstance(event, str):
                raise ValueError("body needs an 'event'")
            return 201, {"deliveries": sb.fire(event, **data)}
        if route == ("GET", "/deliveries"):
            wait = query.get("wait", [None])[0]
            found = sb.wait_for_deliveries(float(wait)) if wait else sb.deliveries
            return 200, {"collection": [d.describe() for d in found]}
        if route == ("GET", "/exchanges"):
            return 200, {"collection": [e.describe() for e in sb.exchanges]}
        if route == ("POST", "/tokens"):
            data = _json(body)
            sb.add_token(_text(data, "token"), _text(data, "user"))
            return 201, {"token_added": True}
        if route == ("POST", "/tokens/revoke"):
            sb.revoke_token(_text(_json(body), "token"))
            return 200, {"token_revoked": True}
        if route == ("POST", "/rate_limit"):
            per_minute = _json(body).get("per_minute")
            if not isinstance(per_minute, int):
                raise ValueError("per_minute must be an integer")
            sb.set_rate_limit(per_minute)
            return 200, {"per_minute": per_minute}
        if route == ("POST", "/faults"):
            data = _json(body)
            path_prefix, kind = _text(data, "path_prefix"), _text(data, "kind")
            options = {k: v for k, v in data.items() if k not in ("path_prefix", "kind")}
            sb.inject_fault(path_prefix, kind, **options)
            return 201, {"fault_added": True}
        raise LookupError(f"no admin endpoint {method} {path}")


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("body must be JSON") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name!r} must be a non-empty string")
    return value
