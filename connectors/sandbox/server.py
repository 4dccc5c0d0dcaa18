"""HTTP plumbing of every sandbox: parse requests, apply injected faults, write answers,
record exchanges.

Standard library only (``http.server.ThreadingHTTPServer``): one thread per connection, HTTP/1.1
keep-alive so pooled clients behave as they would against the real API. Quiet by design:
``log_message`` is silenced, so neither request lines nor Authorization headers reach stderr.
What is application-specific (the API itself, how a fault's answer looks) comes from the
``Runtime`` the sandbox hands the server.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from .faults import PASS_THROUGH, Fault
from .journal import Exchange

JSON = "application/json; charset=utf-8"
ADMIN_PREFIX = "/_sandbox"
_HTML = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"
)

AdminHandler = Callable[[str, str, dict[str, list[str]], bytes], tuple[int, Any]]


@dataclass
class ApiRequest:
    """One parsed HTTP request; ``headers`` keys are lower-case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON (None when empty); ValueError when it is not JSON."""
        return json.loads(self.body) if self.body else None


@dataclass
class ApiResponse:
    """The answer: JSON body (None for 204), extra headers, and who was authenticated."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    user_uuid: str | None = None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class Api(Protocol):
    def handle(self, request: ApiRequest) -> ApiResponse: ...


class Store(Protocol):
    lock: Any
    generation: int

    def take_fault(self, method: str, path: str) -> Fault | None: ...

    def record_exchange(self, exchange: Exchange, *, generation: int) -> None: ...


@dataclass
class Runtime:
    """What request threads need from the sandbox that owns the server: its state, its API,
    its admin API, how an injected fault answers (status, headers, body) and the event
    that is set on stop (it cuts stalls short)."""

    store: Store
    api: Api
    admin: AdminHandler
    stopping: threading.Event
    fault_answer: Callable[[Fault, ApiRequest], tuple[int, dict, bytes]]
    name: str = "Sandbox"


def fault_answer(
    fault: Fault,
    *,
    budget: dict[str, str],
    error_body: Callable[[int], Any],
    rate_limited_body: Any,
) -> tuple[int, dict, bytes]:
    """How an injected fault answers, in the application's own error shape."""
    options = fault.options
    if fault.kind == "status":
        headers = {**budget, "Content-Type": JSON}
        if options["retry_after"] is not None:
            headers["Retry-After"] = str(options["retry_after"])
        body = options["body"] if options["body"] is not None else error_body(options["status"])
        return options["status"], headers, json.dumps(body).encode()
    if fault.kind == "rate_limit":
        reset = str(options["reset"])
        headers = {
            **budget,
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
            "Retry-After": reset,
            "Content-Type": JSON,
        }
        return 429, headers, json.dumps(rate_limited_body).encode()
    if fault.kind == "non_json":
        return options["status"], {"Content-Type": "text/html; charset=utf-8"}, _HTML
    if fault.kind == "redirect":
        return options["status"], {**budget, "Location": options["location"]}, b""
    return 0, {}, b""  # disconnect: nothing is sent


class SandboxServer(ThreadingHTTPServer):
    """A threading HTTP server that never waits for its handler threads on close."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], runtime: Runtime) -> None:
        self.runtime = runtime
        super().__init__(address, SandboxHandler)

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (a read timeout in a test) is expected, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SandboxHandler(BaseHTTPRequestHandler):
    """Routes ``/_sandbox/...`` to the admin API and everything else to the application's."""

    protocol_version = "HTTP/1.1"
    server_version = "Sandbox/1.0"
    timeout = 60  # idle keep-alive connections are dropped after a minute
    # Headers and body leave in separate writes; with Nagle's algorithm a keep-alive client
    # would wait ~40 ms (delayed ACK) for every body after the first.
    disable_nagle_algorithm = True
    server: SandboxServer

    def version_string(self) -> str:
        return f"{self.server.runtime.name}/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the sandbox is quiet by default and must never log credentials."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:  # a JSON answer, minus the body
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # Request side -----------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        started = time.time()
        generation = self.server.runtime.store.generation
        target = urlsplit(self.path)
        path = unquote(target.path)
        query = parse_qs(target.query, keep_blank_values=True)
        body = self._read_body()
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            self._admin(path, query, body)
            return
        runtime = self.server.runtime
        request_headers = dict(self.headers.items())
        request = ApiRequest(
            method=self.command,
            path=path,
            query=query,
            headers={k.lower(): v for k, v in request_headers.items()},
            body=body,
        )
        fault = runtime.store.take_fault(self.command, path)
        if fault is not None and fault.kind == "stall":
            runtime.stopping.wait(float(fault.options["seconds"]))
        if fault is not None and fault.kind not in PASS_THROUGH:
            status, headers, payload = runtime.fault_answer(fault, request)
            user_uuid = None
        else:
            response = runtime.api.handle(request)
            status, headers, user_uuid = response.status, response.headers, response.user_uuid
            payload = b""
            if response.body is not None:
                payload = json.dumps(response.body).encode()
                headers["Content-Type"] = JSON
        kind = fault.kind if fault is not None else None
        sent = b"" if kind == "disconnect" else payload
        if kind != "disconnect" and status != 204:
            headers["Content-Length"] = str(len(payload))
        if kind == "truncated":
            sent = payload[: len(payload) // 2]  # the declared length stays the full one
            headers["Connection"] = "close"
        # Recorded before the answer leaves, so a client that has its answer finds it logged.
        runtime.store.record_exchange(
            Exchange(
                method=self.command,
                path=path,
                query=query,
                request_headers=request_headers,
                request_body=body,
                status=status,
                response_headers=headers,
                response_body=sent,
                faulted=fault is not None,
                fault_kind=kind,
                user_uuid=user_uuid,
                started_at=started,
                duration=time.time() - started,
            ),
            generation=generation,
        )
        self._write(status, headers, sent, disconnect=kind == "disconnect")

    # Response side ----------------------------------------------------------------------------
    def _write(self, status: int, headers: dict, sent: bytes, *, disconnect: bool) -> None:
        """Write the answer exactly as recorded (a disconnect writes nothing and hangs up)."""
        if disconnect:
            self.close_connection = True
            return
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)  # "Connection: close" also ends keep-alive here
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(sent)
        self.wfile.flush()

    def _admin(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        if not ipaddress.ip_address(self.client_address[0]).is_loopback:
            status, answer = (
                403,
                {"title": "Permission Denied", "message": "Admin API is loopback-only"},
            )
        else:
            status, answer = self.server.runtime.admin(self.command, path, query, body)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
