"""Builders and fixtures shared by the intake, outbox, execution, end-to-end and fault tests.

Plain functions and context managers: each test module wraps what it needs in its own
fixtures, so the lead's conftest stays untouched.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from connectors.calendly.sandbox import seed
from connectors.calendly.webhooks import SIGNATURE_HEADER, signature
from portal.processflows.models import Deployment, Processflow, Run, RunStatus
from portal.processflows.signing import new_signing_key
from tests.factories import every, make_credential, make_deployment, make_processflow
from tests.processes import Process, answers_http, child_env, output_contains, start

CALENDLY = "https://api.calendly.com"


# --- Signed deliveries ------------------------------------------------------------------------


def delivery(event: str = "invitee.created", *, email: str = "ada@example.com", **payload) -> bytes:
    """A Calendly-shaped delivery body for a fresh invitee (so a fresh dedupe key)."""
    scheduled = f"{CALENDLY}/scheduled_events/{uuid.uuid4()}"
    body = {
        "event": event,
        "created_at": "2025-03-03T10:00:00.000000Z",
        "created_by": f"{CALENDLY}/users/{seed.OWNER_USER_UUID}",
        "payload": {
            "uri": f"{scheduled}/invitees/{uuid.uuid4()}",
            "email": email,
            "event": scheduled,
            **payload,
        },
    }
    return json.dumps(body).encode()


def signed(key: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    """Headers of a delivery signed with ``key`` at ``at`` (default now), as Calendly signs."""
    timestamp = int(time.time() if at is None else at)
    return {
        SIGNATURE_HEADER: f"t={timestamp},v1={signature(key, body, timestamp)}",
        "Content-Type": "application/json",
    }


@dataclass
class Hook:
    """A deployed triggered processflow and the signing key its deliveries carry."""

    flow: Processflow
    deployment: Deployment
    key: str

    @property
    def path(self) -> str:
        return f"/hooks/{self.flow.hook_id}/"

    def post(self, client, body: bytes, *, key: str | None = None, at: float | None = None,
             headers: dict | None = None):  # fmt: skip
        """POST ``body`` with the Django test client, signed with ``key`` (default ours)."""
        sent = signed(key or self.key, body, at=at) if headers is None else headers
        return client.post(self.path, data=body, content_type="application/json", headers=sent)

    def send(self, base_url: str, body: bytes, *, timeout: float = 60) -> requests.Response:
        """POST ``body``, signed now, to a real server at ``base_url``."""
        return requests.post(
            base_url + self.path, data=body, headers=signed(self.key, body), timeout=timeout
        )


def deploy_hook(flow: Processflow, **fields) -> Hook:
    """An active deployment of ``flow``'s latest version with a signing key, as registering
    its subscription leaves it (without talking to the application)."""
    deployment = make_deployment(flow, registration_state="active", **fields)
    key = new_signing_key(deployment)
    deployment.save()
    return Hook(flow, deployment, key)


# --- Flows ------------------------------------------------------------------------------------


def rest_credential(organization, url: str, *, token: str = "dest-token-0123456789abcdef"):
    """A REST credential (bearer) whose base URL is ``url``."""
    return make_credential(
        organization,
        name=f"Destination {uuid.uuid4().hex[:6]}",
        application="rest",
        fields={"base_url": url, "auth_type": "bearer"},
        secrets={"token": token},
    )


def forward_steps(rest, *, mapping: dict | None = None, path: str = "/bookings") -> list[dict]:
    """A map step then a REST post of its document: no call to Calendly."""
    return [
        {
            "name": "document",
            "type": "map",
            "mapping": mapping or {"email": "{{ trigger.payload.email }}"},
        },
        {
            "name": "forward",
            "type": "action",
            "application": "rest",
            "credential": rest.pk,
            "action": "post_json",
            "filters": [["path", path]],
            "document": "{{ steps.document }}",
        },
    ]


def booking_steps(calendly, rest) -> list[dict]:
    """The issue's typical flow: fetch the scheduled event, map, forward."""
    return [
        {
            "name": "event",
            "type": "action",
            "application": "calendly",
            "credential": calendly.pk,
            "action": "scheduled_event",
            "filters": [["uuid", "{{ trigger.payload.event }}"]],
        },
        {
            "name": "document",
            "type": "map",
            "mapping": {
                "email": "{{ trigger.payload.email }}",
                "title": "{{ steps.event.resource.name }}",
            },
        },
        {
            "name": "forward",
            "type": "action",
            "application": "rest",
            "credential": rest.pk,
            "action": "post_json",
            "filters": [["path", "/bookings"]],
            "document": "{{ steps.document }}",
        },
    ]


def forwarding_hook(organization, url: str, *, name: str = "Forward", **kw) -> Hook:
    """A deployed triggered flow that maps each delivery and POSTs it to ``url``."""
    calendly = make_credential(organization, name=f"Calendly {uuid.uuid4().hex[:6]}")
    rest = rest_credential(organization, url)
    flow = make_processflow(organization, calendly, name=name, steps=forward_steps(rest, **kw))
    return deploy_hook(flow)


def runs_of(hook: Hook):
    return every(Run).filter(processflow=hook.flow)


def statuses(hook: Hook) -> list[str]:
    return sorted(runs_of(hook).values_list("status", flat=True))


def all_succeeded(hook: Hook, count: int) -> bool:
    return statuses(hook) == [RunStatus.SUCCEEDED] * count


# --- Configuration -----------------------------------------------------------------------------


@contextmanager
def eager_tasks():
    """Celery tasks run inline where they are sent (their errors propagate); the app's
    configuration is restored afterwards."""
    from portal.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        yield app
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved


def reach(monkeypatch, settings, sandbox) -> None:
    """Let the portal (this process) talk to the Calendly sandbox and to destinations on
    loopback; ``settings`` is pytest-django's fixture, which restores them."""
    monkeypatch.setenv("CALENDLY_API_BASE_URL", sandbox.url)
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]


# --- A destination with a script ---------------------------------------------------------------


@dataclass
class ScriptedDestination:
    """A JSON API on loopback that answers POSTs from a script and keeps what it accepted.

    The n-th request gets the n-th answer (the last one repeats), after ``delay`` seconds,
    and, while the destination is ``held``, not before ``release()``: a test can act while
    requests are certainly in flight, however slow the machine.
    A document is accepted (kept in ``received``) when its answer is 2xx, at the moment the
    request arrives; a repeated Idempotency-Key of an accepted document gets the same answer
    and is not kept again, even while the first request is still being answered. So a
    client killed mid-request that sends again with the same key is seen once, as a real
    API that honours the key would see it. ``requests`` lists every request.
    """

    answers: list[tuple[int, dict[str, str]]]
    delay: float = 0.0
    echo: str | None = None
    received: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Answer held requests, and from now on every request without waiting."""
        self.released.set()

    @property
    def documents(self) -> list:
        with self.lock:
            return [r["json"] for r in self.received]

    def answer(
        self, key: str | None, document, request_headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str]]:
        with self.lock:
            status, headers = self.answers[min(len(self.requests), len(self.answers) - 1)]
            self.requests.append({"key": key, "json": document, "status": status})
            if key and key in self.keys:
                return self.keys[key], {}
            if status < 300:
                self.received.append(
                    {"key": key, "json": document, "headers": request_headers or {}}
                )
                if key:
                    self.keys[key] = status
            return status, headers


@contextmanager
def scripted_destination(*answers: int | tuple[int, dict], delay: float = 0, echo=None,
                         hold: bool = False):  # fmt: skip
    """Serve a ``ScriptedDestination`` for the ``with`` block. ``answers`` are statuses or
    (status, headers); ``echo`` names a request header whose value the answer repeats;
    ``hold``: requests wait for ``destination.release()`` before they are answered."""
    script = [a if isinstance(a, tuple) else (a, {}) for a in answers or (201,)]
    destination = ScriptedDestination(script, delay=delay, echo=echo)
    if not hold:
        destination.release()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers = destination.answer(
                self.headers.get("Idempotency-Key"),
                json.loads(body or b"null"),
                dict(self.headers.items()),
            )
            destination.released.wait()
            if destination.delay:
                time.sleep(destination.delay)
            answer = {"ok": status < 300}
            if destination.echo:
                answer["seen"] = self.headers.get(destination.echo)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):  # validating a REST credential GETs its base URL
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
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    destination.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield destination
    finally:
        destination.release()  # no handler thread waits for a release that never comes
        server.shutdown()
        server.server_close()


# --- The intake server as a child process -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_web(**extra_env: str) -> tuple[Process, str]:
    """Serve the portal with gunicorn (one sync worker) on the test database; returns the
    process and its base URL once it answers."""
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}",
        "--workers", "1", "--timeout", "120", "--graceful-timeout", "5",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # GET is refused before any database or broker is touched: a pure liveness probe. The
    # first answer waits for the worker to boot, which takes long on a busy machine.
    ready = answers_http(f"{url}/hooks/ready/")
    process = start("gunicorn", args, env=child_env(**extra_env), ready=ready, what="answer HTTP")
    return process, url


def start_relay(**extra_env: str) -> Process:
    """Run the outbox relay (``manage.py relay_outbox``) on the test database."""
    args = [sys.executable, "manage.py", "relay_outbox"]
    ready = output_contains("relay running")
    return start("relay", args, env=child_env(**extra_env), ready=ready, what="start relaying")
