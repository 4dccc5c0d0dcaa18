"""The agent's side of the wire protocol: HTTPS calls to ``<portal>/api/v1/agent/…``.

Outbound only: the agent asks, the portal answers. Errors are sorted into what the caller
does next: :class:`PortalUnavailable` (wait and try again, with backoff), :class:`LeaseLost`
(409: drop the run), :class:`Unauthorized` (401: the agent was revoked; stop asking) and
:class:`Rejected` (any other refusal: this request will never be accepted).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import requests

API_PREFIX = "/api/v1/agent/"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
# The portal holds a long-poll up to 25 s; the read waits that long plus a margin.
LONG_POLL_MARGIN = 20.0


class PortalError(Exception):
    """Base of the portal's answers that are not a success."""

    status: int | None = None


class PortalUnavailable(PortalError):
    """The portal could not be reached, or answered 5xx/429: try again later."""


class Rejected(PortalError):
    """The portal refused this request (4xx); sending it again does not help."""

    def __init__(self, status: int, message: str):
        super().__init__(f"The portal answered {status}: {message}")
        self.status = status
        self.message = message


class Unauthorized(Rejected):
    """401: the agent's secret is not (or no longer) valid: it was revoked."""


class LeaseLost(Rejected):
    """409: the run's lease is no longer this agent's."""


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no explanation"
    if isinstance(body, dict):
        error = body.get("error") or body.get("detail") or body
        if isinstance(error, dict):
            error = error.get("message") or error.get("detail") or error
        return str(error)[:500]
    return str(body)[:500]


class PortalClient:
    """Calls to one portal, authenticated by the agent's secret (``Authorization: Agent``).

    Thread-safe: each thread keeps its own HTTP session (connections are reused)."""

    def __init__(self, portal_url: str, secret: str | None = None):
        self.base = portal_url.rstrip("/") + API_PREFIX
        self._secret = secret
        self._local = threading.local()

    def __repr__(self) -> str:  # never the secret
        return f"<PortalClient {self.base}>"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = "connect-agent"
            if self._secret:
                session.headers["Authorization"] = f"Agent {self._secret}"
        return session

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> Any:
        """One request; the decoded JSON answer, or a :class:`PortalError`."""
        try:
            response = self._session().request(
                method, self.base + path, json=body, params=params,
                timeout=(CONNECT_TIMEOUT, read_timeout),
            )  # fmt: skip
        except requests.RequestException as error:
            # The exception text names the URL and the cause, never our headers.
            raise PortalUnavailable(
                f"The portal could not be reached ({type(error).__name__})."
            ) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise PortalUnavailable(f"The portal answered {status}: {_message(response)}")
        if status == 401:
            raise Unauthorized(status, _message(response))
        if status == 409:
            raise LeaseLost(status, _message(response))
        if status >= 400:
            raise Rejected(status, _message(response))
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise PortalUnavailable(
                f"The portal answered {status} with something that is not JSON."
            ) from None

    # --- The protocol's calls ------------------------------------------------------------

    def register(self, *, key: str, name: str, hostname: str, version: str) -> dict:
        """Pair with the organization that made ``key`` (works once)."""
        return self.call(
            "POST", "register", body={"key": key, "name": name, "hostname": hostname,
                                      "version": version},
        )  # fmt: skip

    def heartbeat(self, *, version: str, applications: list[dict]) -> dict:
        return self.call(
            "POST", "heartbeat", body={"version": version, "applications": applications}
        )

    def jobs(self, *, wait: float, limit: int) -> list[dict]:
        answer = self.call(
            "GET", "jobs", params={"wait": int(wait), "limit": limit},
            read_timeout=wait + LONG_POLL_MARGIN,
        )  # fmt: skip
        jobs = answer.get("jobs") if isinstance(answer, dict) else None
        return [job for job in jobs or [] if isinstance(job, dict)]

    def renew(self, run_id: int, lease: str) -> dict:
        return self.call("POST", f"runs/{run_id}/lease", body={"lease": lease})

    def post(self, path: str, body: dict) -> Any:
        return self.call("POST", path, body=body)


class Backoff:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s… capped at ``cap``, each wait a
    random time between half and all of it, so many agents do not come back at once."""

    def __init__(self, *, base: float = 0.5, cap: float = 30.0):
        self.base = base
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)

    def reset(self) -> None:
        self.failures = 0
