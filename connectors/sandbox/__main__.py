"""``python -m connectors.sandbox APP``: serve an application's sandbox until Ctrl-C.

Prints the base URL first (one line, ``<App> sandbox listening on <url>``) so scripts can read
it, then the accepted (fake, sandbox-only) tokens. Point ``<APP>_API_BASE_URL`` at the URL.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import signal
import sys
import threading

from .. import registry
from .app import Sandbox


def sandbox_class(app: str) -> type:
    """The sandbox of connector ``app``: its ``sandbox`` package's ``SANDBOX``, or the
    ``Sandbox`` subclass it defines."""
    module = importlib.import_module(f"connectors.{app}.sandbox")
    declared = getattr(module, "SANDBOX", None)
    if declared is not None:
        return declared
    for _, value in inspect.getmembers(module, inspect.isclass):
        if issubclass(value, Sandbox) and value is not Sandbox:
            return value
    raise LookupError(f"connectors.{app}.sandbox declares no sandbox")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.sandbox",
        description="Serve an application's sandbox (fake data, fake tokens) over HTTP.",
    )
    parser.add_argument("app", help="the connector's name, e.g. calendly or github")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8900, help="port; 0 picks a free one")
    parser.add_argument("--rate-limit", type=int, default=500, help="requests per token per minute")
    args = parser.parse_args(argv)
    try:
        kind = sandbox_class(args.app)
    except (ImportError, LookupError) as error:
        parser.error(f"no sandbox for {args.app!r} ({error})")
    stop = threading.Event()
    # SIGTERM (e.g. from a process manager) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with kind(host=args.host, port=args.port, rate_limit_per_minute=args.rate_limit) as sb:
        display = registry.get_connector(args.app).display_name
        print(f"{display} sandbox listening on {sb.url}", flush=True)
        print(f"Point {args.app.upper()}_API_BASE_URL at it. Admin API: {sb.url}/_sandbox/")
        for token, user in sb.tokens.items():
            print(f"  {user}: {token}")
        print("Ctrl-C stops.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
