"""The local UI's HTTP server: Django's WSGI application in a threaded server on loopback.

The UI is for a person on the agent's own server (or through an SSH tunnel), so it listens
on 127.0.0.1 by default; Django does sessions, CSRF and password checks.
"""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

logger = logging.getLogger(__name__)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # request lines only at debug level
        logger.debug("%s " + format, self.address_string(), *args)


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8765`` for IPv6); ValueError with what is expected."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen takes host:port, e.g. 127.0.0.1:8765, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class UIServer:
    """The local UI, served from a thread until :meth:`stop`."""

    def __init__(self, host: str, port: int):
        from django.core.wsgi import get_wsgi_application

        self.httpd = make_server(
            host, port, get_wsgi_application(),
            server_class=_ThreadingServer, handler_class=_QuietHandler,
        )  # fmt: skip
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="agent-ui", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
