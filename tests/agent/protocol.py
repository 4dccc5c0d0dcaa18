"""The portal's side of the agent wire protocol (/work design: ``/api/v1/agent/…``), as a
small in-memory HTTP server, for testing the agent's client and work loop on their own.

It answers exactly what the protocol says and records every request, so a test can hand the
agent jobs and read back what it reported. The end-to-end tests run the real portal.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KEY = "cpr_1.1.test-registration-key"
SECRET = "cpa_1.7.test-agent-secret"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # an agent that stopped while its long-poll was held: nothing to report


class ProtocolPortal:
    """``with ProtocolPortal() as portal:`` a portal that speaks the agent protocol."""

    def __init__(self, port: int = 0):
        self.lock = threading.Condition()
        self.requests: list[tuple[str, str, dict]] = []
        self.jobs: list[dict] = []
        self.leases: dict[int, str] = {}  # run id -> the lease that is current
        self.reports: dict[int, list[dict]] = {}  # run id -> its reports, in order
        self.steps: dict[int, list[dict]] = {}  # run id -> the step records reported
        self.finished: dict[int, dict] = {}
        self.results: dict[str, dict] = {}
        self.heartbeats: list[dict] = []
        self.applications = [{"application": "calendly", "title": "Calendly"}]
        self.key_used = False
        self.revoked = False
        self.port = port
        self.server: ThreadingHTTPServer | None = None

    # --- What tests do -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue_run(
        self, run_id: int, definition: dict, trigger: dict, *, stale: bool = False, **extra
    ) -> str:
        """Lease a run to the agent (``stale``: the lease it gets was already taken over)."""
        lease = f"lease-{run_id}-{len(self.leases)}"
        run = {
            "id": run_id, "uid": f"run-uid-{run_id}", "attempt": 1, "lease": lease,
            "lease_seconds": 300, "processflow": {"id": 1, "name": "Test flow"},
            "definition": definition, "trigger": trigger, "previous": [],
            "idempotency_prefix": f"run-uid-{run_id}",
            "purpose": f"processflow 'Test' (run {run_id})",
            **extra,
        }  # fmt: skip
        with self.lock:
            self.leases[run_id] = "someone-else" if stale else lease
            self.jobs.append({"kind": "run", "id": f"run:{run_id}", "run": run})
            self.lock.notify_all()
        return lease

    def queue_job(self, job: dict) -> None:
        with self.lock:
            self.jobs.append(job)
            self.lock.notify_all()

    def take_over(self, run_id: int) -> None:
        """Another agent took the run: this one's lease is no longer current."""
        with self.lock:
            self.leases[run_id] = "someone-else"

    def wait(self, predicate, timeout: float = 120) -> None:
        with self.lock:
            if not self.lock.wait_for(predicate, timeout=timeout):
                raise AssertionError("the agent did not report what was expected in time")

    # --- The server ------------------------------------------------------------------------

    def start(self) -> ProtocolPortal:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self):
                self._handle("GET", {})

            def do_POST(self):
                self._handle("POST", self._body())

            def _handle(self, method: str, body: dict) -> None:
                url = urlparse(self.path)
                path = url.path.removeprefix("/api/v1/agent/")
                with portal.lock:
                    portal.requests.append((method, path, body))
                if path == "register":
                    status, answer = portal.register(body)
                elif self.headers.get("Authorization") != f"Agent {SECRET}" or portal.revoked:
                    status, answer = 401, {"error": {"message": "Not a valid agent secret."}}
                else:
                    status, answer = portal.route(method, path, body, parse_qs(url.query))
                self._answer(status, answer)

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> ProtocolPortal:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- The protocol ------------------------------------------------------------------------

    def register(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            if body.get("key") != KEY or self.key_used:
                return 400, {
                    "error": "This registration key is not valid: it may have expired or been used."
                }
            self.key_used = True
        agent = {
            "id": 7, "name": body.get("name"), "group": {"id": 3, "name": "Plant A"},
            "organization": {"slug": "acme", "name": "Acme"},
        }  # fmt: skip
        return 201, {"agent": agent, "secret": SECRET}

    def route(self, method: str, path: str, body: dict, query: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        with self.lock:
            if path == "heartbeat":
                self.heartbeats.append(body)
                self.lock.notify_all()
                return 200, {"applications": self.applications, "poll_seconds": 25}
            if path == "jobs":
                wait = min(float(query.get("wait", ["0"])[0]), 25)
                limit = min(int(query.get("limit", ["10"])[0]), 10)
                self.lock.wait_for(lambda: self.jobs, timeout=wait)
                taken, self.jobs = self.jobs[:limit], self.jobs[limit:]
                return 200, {"jobs": taken}
            if parts[0] == "runs" and len(parts) == 3:
                run_id = int(parts[1])
                if run_id not in self.leases:
                    return 404, {"error": "Not found."}
                if body.get("lease") != self.leases[run_id]:
                    return 409, {"error": "lease lost"}
                if parts[2] == "report":
                    self.reports.setdefault(run_id, []).append(body)
                    self.steps.setdefault(run_id, []).extend(body.get("steps", []))
                    if body.get("finish") is not None:
                        self.finished.setdefault(run_id, body["finish"])
                elif parts[2] == "lease":
                    return 200, {"lease_expires_at": "2099-01-01T00:00:00+00:00"}
                self.lock.notify_all()
                return 200, {}
            if parts[0] == "jobs" and len(parts) == 3 and parts[2] == "result":
                self.results.setdefault(parts[1], body)
                self.lock.notify_all()
                return 200, {}
        return 404, {"error": "Not found."}
