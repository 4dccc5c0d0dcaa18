"""Test helpers for connector authors: a scripted HTTP server on loopback.

``RecordingServer`` answers each request with what its ``respond`` function returns and keeps
every request (method, path, headers, body), so a test can check what a connector sent, and
make it face answers a real API rarely gives (an echoed secret, a redirect, a slow reply)::

    with RecordingServer(lambda request: Reply(200, {"ok": True})) as server:
        ...  # point the connector at server.url, then inspect server.requests
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # the same port on two requests means one reused connection

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer: a status, a body (dict/list -> JSON, str/bytes as is) and headers.
    ``delay`` waits before answering (to trip a client's read timeout)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers via ``respond``."""

    def __init__(self, respond: Callable[[Recorded], Reply] | None = None) -> None:
        self.respond = respond or (lambda request: Reply(200, {}))
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = urlsplit(self.path)
                recorded = Recorded(
                    self.command,
                    target.path,
                    parse_qs(target.query, keep_blank_values=True),
                    dict(self.headers.items()),
                    body,
                    self.client_address[1],
                )
                with owner._lock:
                    owner.requests.append(recorded)
                reply = owner.respond(recorded)
                if reply.delay:
                    owner._stopping.wait(reply.delay)
                payload = reply.body
                headers = dict(reply.headers)
                if isinstance(payload, dict | list):
                    payload = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(payload, str):
                    payload = payload.encode()
                payload = payload or b""
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
