"""Helpers for the sandbox's tests: an authenticated client and a local webhook receiver."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from connectors.calendly.sandbox import seed


class CalendlyClient:
    """``requests`` against the sandbox with one bearer token; paths or full URLs both work."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}{path_or_url}"

    def get(self, path_or_url: str, **params) -> requests.Response:
        return self.session.get(self._url(path_or_url), params=params or None, timeout=10)

    def post(self, path_or_url: str, json=None, **kwargs) -> requests.Response:
        return self.session.post(self._url(path_or_url), json=json, timeout=10, **kwargs)

    def delete(self, path_or_url: str) -> requests.Response:
        return self.session.delete(self._url(path_or_url), timeout=10)

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def client_for(calendly_sandbox):
    """``client_for(token)`` -> a CalendlyClient on the sandbox (token None: no header)."""
    clients = []

    def make(token: str | None = seed.OWNER_TOKEN) -> CalendlyClient:
        client = CalendlyClient(calendly_sandbox.url, token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def owner(client_for) -> CalendlyClient:
    """The seed organization's owner, authenticated with ``seed.OWNER_TOKEN``."""
    return client_for(seed.OWNER_TOKEN)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint on loopback that answers ``statuses`` in turn (the last repeats)."""

    statuses: list[int]
    received: list[Received] = field(default_factory=list)
    url: str = ""
    got_one: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver_factory():
    """``receiver_factory(200)`` or ``receiver_factory(500, 500, 200)`` -> a running Receiver."""
    servers = []

    def make(*statuses: int) -> Receiver:
        receiver = Receiver(list(statuses) or [200])

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                index = min(len(receiver.received), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.got_one.set()

            def log_message(self, format, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/calendly"
        return receiver

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()
