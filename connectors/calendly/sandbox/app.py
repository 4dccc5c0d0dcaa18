"""``CalendlySandbox``: the Python API over a running sandbox (the contract tests rely on)."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

from connectors.sandbox.faults import make_fault
from connectors.sandbox.journal import Delivery, Exchange
from connectors.sandbox.server import (
    ApiRequest,
    Runtime,
    SandboxServer,
    bearer_token,
    fault_answer,
)

from . import seed
from .admin import AdminApi
from .api import CalendlyApi
from .errors import TOO_MANY_REQUESTS, error_body
from .state import Store, utcnow
from .webhooks import Dispatcher


class CalendlySandbox:
    """A Calendly API v2 look-alike serving real HTTP on loopback, for tests, demos, benchmarks.

    It keeps everything in memory and starts from ``seed`` (see that module for the cast and the
    tokens). ``start()`` serves from a daemon thread; ``reset()`` returns to the seed without a
    restart, which is what makes one server per test session cheap. Everything a client did is
    recorded in ``exchanges``; everything the sandbox sent to webhooks in ``deliveries``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_per_minute: int = 500,
        delivery_retry_delays: tuple[float, ...] = (1, 2, 4, 8),
        delivery_timeout: tuple[float, float] = (10, 15),
    ) -> None:
        if rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1")
        self.host = host
        self.port = port
        self._store = Store(rate_limit_per_minute)
        self._api = CalendlyApi(self._store)
        self._dispatcher = Dispatcher(self._store, delivery_retry_delays, delivery_timeout)
        self._stopping = threading.Event()
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # Lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind and serve in a daemon thread; with port 0 the OS picks a free port."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        runtime = Runtime(
            self._store, self._api, AdminApi(self), self._stopping, self._fault_answer,
            name="CalendlySandbox",
        )  # fmt: skip
        self._stopping.clear()
        server = SandboxServer((self.host, self.port), runtime)
        host, port = server.server_address[:2]
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 (reporting, not binding)
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self._url = f"http://{host}:{port}"
        self._store.set_base_url(self._url)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="calendly-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled requests and retry waits are cut short."""
        if self._server is None:
            return
        self._stopping.set()
        self._dispatcher.cancel_all(restart=True)
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:54321`` (resource URIs start with it)."""
        if self._url is None:
            raise RuntimeError("the sandbox has not been started")
        return self._url

    def reset(self) -> None:
        """Back to the seed: subscriptions, tokens, budgets, faults, deliveries and the log."""
        self._dispatcher.cancel_all()
        self._store.load_seed()

    def _fault_answer(self, fault, request: ApiRequest) -> tuple[int, dict, bytes]:
        """An injected fault's answer, in Calendly's error shape with its budget headers."""
        token = bearer_token(request.headers.get("authorization")) or ""
        user = self._store.user_for_token(token) if token else None
        title, message = TOO_MANY_REQUESTS
        return fault_answer(
            fault,
            budget=self._store.peek_budget(token, user, time.time()).headers(),
            error_body=error_body,
            rate_limited_body={"title": title, "message": message},
        )

    # Credentials, budgets, faults -------------------------------------------------------------
    @property
    def tokens(self) -> dict[str, str]:
        """Currently accepted tokens and the user UUID each authenticates."""
        with self._store.lock:
            return dict(self._store.tokens)

    def add_token(self, token: str, user_uuid: str = seed.OWNER_USER_UUID) -> None:
        """Accept ``token`` as ``user_uuid`` (until revoked or reset)."""
        with self._store.lock:
            if user_uuid not in self._store.users:
                raise ValueError(f"unknown user {user_uuid!r}")
            self._store.tokens[token] = user_uuid

    def revoke_token(self, token: str) -> None:
        """Refuse ``token`` from now on (401), as Calendly does for a revoked PAT."""
        with self._store.lock:
            self._store.tokens.pop(token, None)

    def set_rate_limit(self, per_minute: int) -> None:
        """Change the per-token budget; requests already counted stay counted."""
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        with self._store.lock:
            self._store.rate_limit = per_minute

    def inject_fault(self, path_prefix: str, kind: str, times: int = 1, **opts: Any) -> None:
        """Make the next ``times`` API requests under ``path_prefix`` misbehave (see faults)."""
        self._store.add_fault(make_fault(path_prefix, kind, times, **opts))

    # Webhooks ---------------------------------------------------------------------------------
    def fire(
        self,
        event: str = "invitee.created",
        *,
        user_uuid: str | None = None,
        scheduled_event_uuid: str | None = None,
        invitee_uuid: str | None = None,
        **overrides: Any,
    ) -> list[str]:
        """Make ``event`` happen and deliver it to every matching active subscription.

        Invitee events book (or pick, by ``invitee_uuid``) an invitee of ``user_uuid``'s
        calendar (default the seed's owner); ``overrides`` replace payload fields (known invitee
        fields such as ``email`` are stored too, so the API agrees with the webhook).
        Returns the ids of the deliveries started; see ``wait_for_deliveries``.
        """
        return self._dispatcher.fire(
            event,
            user_uuid=user_uuid,
            scheduled_event_uuid=scheduled_event_uuid,
            invitee_uuid=invitee_uuid,
            payload=overrides,
        )

    def wait_for_deliveries(self, timeout: float = 10) -> list[Delivery]:
        """Block until no delivery is pending; returns all deliveries (TimeoutError if not)."""
        return [d.snapshot() for d in self._dispatcher.wait(timeout)]

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery since the last reset, oldest first (copies)."""
        with self._store.lock:
            return [d.snapshot() for d in self._store.deliveries.values()]

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        """Every webhook subscription as the API would return it, oldest first."""
        with self._store.lock:
            return [
                self._store.renderer.subscription(s) for s in self._store.subscriptions.values()
            ]

    def disable_subscription(self, uuid: str) -> dict[str, Any]:
        """Disable a subscription as Calendly does after a day of failed deliveries."""
        with self._store.lock:
            subscription = self._store.subscriptions.get(uuid)
            if subscription is None:
                raise LookupError(f"no webhook subscription {uuid!r}")
            now = utcnow()
            subscription.state = "disabled"
            subscription.retry_started_at = subscription.retry_started_at or now
            subscription.updated_at = now
            return self._store.renderer.subscription(subscription)

    @property
    def organization_signing_key(self) -> str:
        """The key signing deliveries of the seed organization's subscriptions that were created
        without their own ``signing_key``."""
        return self.signing_key_for_organization(seed.ORGANIZATION_UUID)

    def signing_key_for_organization(self, organization_uuid: str) -> str:
        with self._store.lock:
            return self._store.organizations[organization_uuid].signing_key

    # Journal ----------------------------------------------------------------------------------
    @property
    def exchanges(self) -> list[Exchange]:
        """Every Calendly API call since the last reset (admin calls excluded), oldest first."""
        with self._store.lock:
            return list(self._store.exchanges)

    def clear_exchanges(self) -> None:
        """Forget recorded exchanges only (e.g. after a test's setup requests)."""
        with self._store.lock:
            self._store.exchanges.clear()
