"""``Sandbox``: the shared machinery of every application look-alike.

A sandbox serves an application's API over real HTTP on loopback, for tests, demos and
benchmarks. Everything that is the same for every application is here: the server thread,
tokens, a per-token rate budget, injected faults, the journal of exchanges, pagination in
the application's style, webhook deliveries (signed, retried, recorded) and the admin API
under ``/_sandbox/``. A subclass declares what is the application's own: its seed data
(``seed``), its routes (``@route``), its error shape (``error_body``), how a token is sent
(``credential``) and its rate-limit headers, and, for webhooks, what ``fire`` does.

    class AcmeSandbox(Sandbox):
        name = "AcmeSandbox"

        def seed(self):
            self.tokens = {"tok-owner": "owner"}

        @route("GET", "/me")
        def me(self, request, user):
            return {"id": user}
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self
from urllib.parse import urlencode

from . import faults
from .admin import AdminApi
from .faults import Fault, make_fault
from .fill import fill
from .journal import Delivery, Exchange
from .outbound import post_once
from .ratelimit import RateLimiter, RateStatus
from .server import (
    ApiRequest,
    ApiResponse,
    Runtime,
    SandboxServer,
    bearer_token,
    fault_answer,
)

MAX_EXCHANGES = 50_000
Sign = Callable[[bytes, str], Mapping[str, str]]  # (body, delivery id) -> headers


class SandboxError(Exception):
    """An error answer: raise it anywhere in a handler."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {message}")
        self.status, self.message, self.extra = status, message, extra


def invalid(message: str, **detail: Any) -> SandboxError:
    """A 422 naming what is wrong with the request (``errors: [{..., "message"}]``)."""
    return SandboxError(422, "Validation Failed", errors=[{**detail, "message": message}])


def route(method: str, template: str) -> Callable[[Callable], Callable]:
    """Declare a handler for ``METHOD /path/{param}``; it gets (request, user, **params)."""

    def mark(handler: Callable) -> Callable:
        handler.route = (method.upper(), template)  # type: ignore[attr-defined]
        return handler

    return mark


class Sandbox:
    """Base class of application sandboxes (see the module's docstring)."""

    #: Thread names and the Server header (default: the class's name).
    name: str = ""
    #: The OpenAPI document the answers are completed from (``answer``), if any.
    spec: Any = None
    #: Fields every error body carries besides ``message`` (e.g. a documentation URL).
    error_fields: Mapping[str, Any] = {}
    #: ``X-RateLimit-Reset`` as a Unix time (GitHub) instead of seconds until the reset.
    reset_as_time: bool = False
    #: How an unknown token is refused (Figma: 403 "Invalid token").
    unauthenticated: tuple[int, str] = (401, "Bad credentials")

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_per_minute: int = 5000,
        delivery_retry_delays: Iterable[float] = (1, 2, 4, 8),
        delivery_timeout: tuple[float, float] = (10, 15),
    ) -> None:
        if rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1")
        self.host, self.port = host, port
        self.name = self.name or type(self).__name__
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.default_rate_limit = rate_limit_per_minute
        self.retry_delays = tuple(float(d) for d in delivery_retry_delays)
        self.connect_timeout, self.read_timeout = (float(t) for t in delivery_timeout)
        self.limiter = RateLimiter()
        self.exchanges_log: deque[Exchange] = deque(maxlen=MAX_EXCHANGES)
        self.generation = 0
        self.routes = []
        for attribute in dir(type(self)):
            declared = getattr(type(self), attribute)
            if callable(declared) and hasattr(declared, "route"):
                method, template = declared.route
                handler = getattr(self, attribute)
                pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
                self.routes.append((method, re.compile(f"^{pattern}$"), template, handler))
        # The most literal template first (/user/repos before /user/{name}).
        self.routes.sort(key=lambda r: (r[2].count("{"), -len(r[2])))
        self._cancel = threading.Event()
        self._stopping = threading.Event()
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._counter = 0
        self.load_seed()

    # To declare ---------------------------------------------------------------------------
    def seed(self) -> None:
        """Set ``self.tokens`` (token -> user key) and the application's data."""
        self.tokens: dict[str, str] = {}

    def credential(self, request: ApiRequest) -> str | None:
        """The token a request carries (default: ``Authorization: Bearer``)."""
        return bearer_token(request.headers.get("authorization"))

    def error_body(self, status: int, message: str, **extra: Any) -> Any:
        """An error answer in the application's shape."""
        return {"message": message, **self.error_fields, **extra}

    def rate_headers(self, status: RateStatus) -> dict[str, str]:
        """The budget as the application reports it on every answer."""
        headers = status.headers()
        headers["X-RateLimit-Used"] = str(status.limit - status.remaining)
        if self.reset_as_time:
            headers["X-RateLimit-Reset"] = str(int(time.time()) + status.reset)
        return headers

    def params(self, request: ApiRequest, user: str, **params: str) -> dict[str, Any]:
        """What handlers get for the path's parameters (e.g. the resource they name, checked
        against what ``user`` may see); default: the parameters as they are."""
        return params

    def fire(self, event: str, **payload: Any) -> list[str]:
        """Make ``event`` happen and deliver it (applications with webhooks override)."""
        raise ValueError(f"{self.name} has no webhook event {event!r}")

    # Lifecycle ----------------------------------------------------------------------------
    def load_seed(self) -> None:
        with self.lock:
            self.rate_limit = self.default_rate_limit
            self.limiter.clear()
            self.faults: list[Fault] = []
            self.delivery_log: dict[str, Delivery] = {}
            self.exchanges_log.clear()
            self.generation += 1
            self.seed()
            self.changed.notify_all()

    def start(self) -> Self:
        """Bind and serve in a daemon thread; with port 0 the OS picks a free port."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        runtime = Runtime(
            self, self, AdminApi(self), self._stopping, self._fault_answer, name=self.name
        )
        self._stopping.clear()
        server = SandboxServer((self.host, self.port), runtime)
        host, port = server.server_address[:2]
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 (reporting, not binding)
            host = "127.0.0.1"
        self._url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled requests and retry waits are cut short."""
        if self._server is None:
            return
        self._stopping.set()
        self._cancel_deliveries()
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
        """The API base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise RuntimeError("the sandbox has not been started")
        return self._url

    def reset(self) -> None:
        """Back to the seed: data, tokens, budgets, faults, deliveries and the journal."""
        self._cancel_deliveries()
        self.load_seed()

    # Credentials, budgets, faults, journal ------------------------------------------------
    def add_token(self, token: str, user: str) -> None:
        with self.lock:
            self.tokens[token] = user

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def set_rate_limit(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        with self.lock:
            self.rate_limit = per_minute

    def inject_fault(self, path_prefix: str, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` API requests under ``path_prefix`` misbehave (see faults)."""
        with self.lock:
            self.faults.append(make_fault(path_prefix, kind, times, **options))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            return faults.take(self.faults, method, path)

    def record_exchange(self, exchange: Exchange, *, generation: int) -> None:
        with self.lock:
            if generation == self.generation:
                self.exchanges_log.append(exchange)

    @property
    def exchanges(self) -> list[Exchange]:
        """Every API call since the last reset (admin calls excluded), oldest first."""
        with self.lock:
            return list(self.exchanges_log)

    def clear_exchanges(self) -> None:
        with self.lock:
            self.exchanges_log.clear()

    def _fault_answer(self, fault: Fault, request: ApiRequest) -> tuple[int, dict, bytes]:
        token = self.credential(request) or ""
        budget = self.rate_headers(self.limiter.peek(token, self.rate_limit, time.time()))
        return fault_answer(
            fault,
            budget=budget,
            error_body=lambda status: self.error_body(
                status, http.client.responses.get(status, "Error")
            ),
            rate_limited_body=self.error_body(429, "API rate limit exceeded"),
        )

    # Serving ------------------------------------------------------------------------------
    def handle(self, request: ApiRequest) -> ApiResponse:
        """Authenticate, count against the budget, route; errors become answers."""
        token = self.credential(request)
        with self.lock:
            user = self.tokens.get(token) if token else None
            budget = self.limiter.consume(token or "", self.rate_limit, time.time())
            try:
                if not budget.allowed:
                    raise SandboxError(429, "API rate limit exceeded")
                if user is None:
                    raise SandboxError(*self.unauthenticated)
                response = self._route(request, user)
            except SandboxError as error:
                body = self.error_body(error.status, error.message, **error.extra)
                response = ApiResponse(error.status, body)
            response.headers.update(self.rate_headers(budget))
            response.user_uuid = user
            return response

    def _route(self, request: ApiRequest, user: str) -> ApiResponse:
        for method, pattern, _, handler in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                answer = handler(request, user, **self.params(request, user, **match.groupdict()))
                return answer if isinstance(answer, ApiResponse) else ApiResponse(200, answer)
        raise SandboxError(404, "Not Found")  # unknown paths and methods alike, as APIs do

    # Helpers for handlers -----------------------------------------------------------------
    @staticmethod
    def one(items: Iterable[dict], **match: Any) -> dict:
        """The item whose fields equal ``match`` (compared as text); 404 when there is none."""
        for item in items:
            if all(str(item.get(k)) == str(v) for k, v in match.items()):
                return item
        raise SandboxError(404, "Not Found")

    def body(self, request: ApiRequest) -> dict[str, Any]:
        """The request's JSON object; 400 when it is not one."""
        try:
            data = request.json()
        except (UnicodeDecodeError, ValueError):
            raise SandboxError(400, "Problems parsing JSON") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise SandboxError(400, "Body should be a JSON object")
        return data

    @staticmethod
    def require(data: Mapping[str, Any], name: str, **detail: Any) -> Any:
        """``data[name]`` when it is a non-empty text; else a 422 naming it."""
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise invalid(f"{name} is missing", field=name, code="missing_field", **detail)
        return value

    def answer(self, operation: str, data: Any, status: int | None = None, **headers: str) -> Any:
        """``data`` completed to the ``operation``'s declared answer (see ``fill``)."""
        code, schema, _ = self.spec.response(operation, status)
        body = fill(schema, data, base_url=self.url)
        return ApiResponse(code, body, dict(headers))

    def link_page(
        self, request: ApiRequest, operation: str, items: list[Any], *, size: int = 30
    ) -> ApiResponse:
        """One page of ``items`` with ``page``/``per_page`` and an RFC 8288 ``Link`` header
        (``next``, ``last``, ``prev``, ``first``), as GitHub pages."""
        query = {k: v[0] for k, v in request.query.items() if v}
        try:
            per_page = min(100, max(1, int(query.get("per_page", size))))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            raise SandboxError(422, "Validation Failed") from None
        last = max(1, -(-len(items) // per_page))
        links = []
        wanted = {"prev": page > 1, "first": page > 1, "next": page < last, "last": page < last}
        for rel, number in (("prev", page - 1), ("next", page + 1), ("first", 1), ("last", last)):
            if wanted[rel]:
                target = urlencode({**query, "page": number})
                links.append(f'<{self.url}{request.path}?{target}>; rel="{rel}"')
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {"Link": ", ".join(links)} if links else {}
        return self.answer(operation, chunk, **headers)

    # Webhooks -----------------------------------------------------------------------------
    def deliver(
        self, url: str, event: str, body: Mapping[str, Any], sign: Sign | None = None, *,
        headers: Mapping[str, str] | None = None, signature: Any = None, key: str | None = None,
        id_header: str | None = None, subscription: str = "",
        on_failure: Callable[[], None] | None = None,
    ) -> str:  # fmt: skip
        """Send ``body`` to ``url`` from a thread and return the delivery's id (a UUID, the
        same for every attempt). Each attempt carries ``headers``, the id in ``id_header``,
        a fresh signature by the connector's own ``signature`` strategy with ``key`` (or
        whatever ``sign(body, id)`` returns); failed attempts are retried after the delays
        and ``on_failure`` runs when the last one failed."""
        if sign is None:

            def sign(raw: bytes, delivery: str) -> dict[str, str]:
                signed = {signature.header: signature.sign(key, raw)} if signature and key else {}
                return {**(headers or {}), **signed, **({id_header: delivery} if id_header else {})}

        with self.lock:
            self._counter += 1
            delivery = Delivery(
                id=f"{self._counter:08d}-0000-4000-8000-{self._counter:012d}",
                subscription_uri=subscription,
                url=url,
                event=event,
                body=json.dumps(body, separators=(",", ":")).encode(),
            )
            self.delivery_log[delivery.id] = delivery
            generation, cancel = self.generation, self._cancel
        threading.Thread(
            target=self._attempts, args=(delivery, sign, generation, cancel, on_failure),
            name=f"{self.name}-{delivery.id}", daemon=True,
        ).start()  # fmt: skip
        return delivery.id

    def _attempts(self, delivery, sign: Sign, generation: int, cancel, on_failure) -> None:
        for attempt in range(len(self.retry_delays) + 1):
            headers = {"Content-Type": "application/json", **sign(delivery.body, delivery.id)}
            outcome = post_once(
                delivery.url, delivery.body, headers,
                connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            )  # fmt: skip
            with self.lock:
                if self.generation != generation:
                    return
                delivery.headers = headers
                delivery.attempts.append((outcome, time.time()))
                if isinstance(outcome, int) and 200 <= outcome < 300:
                    delivery.state = "delivered"
                    self.changed.notify_all()
                    return
                if attempt == len(self.retry_delays):
                    delivery.state = "failed"
                    if on_failure is not None:
                        on_failure()
                    self.changed.notify_all()
                    return
                self.changed.notify_all()
            if cancel.wait(self.retry_delays[attempt]):
                return

    def _cancel_deliveries(self) -> None:
        self._cancel.set()
        self._cancel = threading.Event()

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery since the last reset, oldest first (copies)."""
        with self.lock:
            return [d.snapshot() for d in self.delivery_log.values()]

    def wait_for_deliveries(self, timeout: float = 10) -> list[Delivery]:
        """Block until no delivery is pending; TimeoutError names the ones still pending."""
        with self.changed:
            pending = lambda: [d for d in self.delivery_log.values() if d.state == "pending"]  # noqa: E731
            if not self.changed.wait_for(lambda: not pending(), timeout):
                raise TimeoutError(f"deliveries still pending after {timeout}s: {pending()}")
            return [d.snapshot() for d in self.delivery_log.values()]
