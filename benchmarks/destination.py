"""A loopback destination for benchmarks: a small threaded HTTP server that accepts JSON.

Every POST is answered ``200 {"ok": true}`` after ``--delay`` seconds (0: at once), over
keep-alive connections, one thread per connection, so many slow answers can be in flight.
``GET /count`` answers how many POSTs arrived and how many distinct Idempotency-Keys they
carried (a re-sent forward shows as the difference).

    .venv/bin/python benchmarks/destination.py --port 8765 [--delay 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Destination(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address, delay: float):
        super().__init__(address, Handler)
        self.delay = delay
        self.lock = threading.Lock()
        self.posts = 0
        self.keys: set[str] = set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body leave in one segment, without waiting for Nagle's algorithm and
    # the client's delayed ACK (40 ms a response otherwise), as any real API server sends.
    wbufsize = 65536
    disable_nagle_algorithm = True
    server: Destination

    def log_message(self, format, *args):  # quiet: one line per request would cost the CPU
        pass

    def _answer(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        key = self.headers.get("Idempotency-Key") or ""
        with self.server.lock:
            self.server.posts += 1
            self.server.keys.add(key)
        if self.server.delay:
            time.sleep(self.server.delay)
        self._answer(200, {"ok": True})

    def do_GET(self):
        with self.server.lock:
            counts = {"posts": self.server.posts, "keys": len(self.server.keys)}
        self._answer(200, counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    server = Destination(("127.0.0.1", args.port), args.delay)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
