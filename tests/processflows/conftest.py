"""Fixtures for processflow tests: the Calendly sandbox, and a destination server."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.connectors.conftest import calendly_sandbox, calendly_sandbox_session  # noqa: F401


@dataclass
class Destination:
    """A JSON API on loopback that records what it receives and honours Idempotency-Key:
    a repeated key is answered like the first time and not recorded again."""

    statuses: list[int]
    received: list[dict] = field(default_factory=list)
    seen_keys: dict[str, int] = field(default_factory=dict)
    url: str = ""

    @property
    def documents(self) -> list:
        return [r["json"] for r in self.received]


@pytest.fixture
def destination_factory():
    servers = []

    def make(*statuses: int) -> Destination:
        destination = Destination(list(statuses) or [201])
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key")
                with lock:
                    if key and key in destination.seen_keys:
                        status = destination.seen_keys[key]
                    else:
                        index = min(len(destination.received), len(destination.statuses) - 1)
                        status = destination.statuses[index]
                        destination.received.append(
                            {
                                "path": self.path,
                                "headers": dict(self.headers.items()),
                                "json": json.loads(body or b"null"),
                                "status": status,
                            }
                        )
                        if key and status < 300:
                            destination.seen_keys[key] = status
                payload = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):  # validation of the credential reaches the base URL
                payload = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        servers.append(server)
        destination.url = f"http://127.0.0.1:{server.server_address[1]}"
        return destination

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def destination(destination_factory) -> Destination:
    """A destination that answers 201 to everything."""
    return destination_factory(201)
