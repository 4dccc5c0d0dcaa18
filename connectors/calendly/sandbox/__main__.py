"""``python -m connectors.calendly.sandbox``: run a sandbox in the foreground until Ctrl-C.

Prints the base URL first (one line, ``Calendly sandbox listening on <url>``) so scripts can
read it, then the seeded tokens. They are fake sandbox-only tokens, safe to show.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import seed
from .app import CalendlySandbox

_TOKEN_NAMES = {
    seed.OWNER_TOKEN: "owner",
    seed.ADMIN_TOKEN: "admin",
    seed.MEMBER_TOKEN: "member (role user)",
    seed.FREE_PLAN_TOKEN: "free plan",
    seed.OTHER_ORG_TOKEN: "other organization",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.calendly.sandbox",
        description="Serve a Calendly API v2 sandbox (fake data, fake tokens) over HTTP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8900, help="port; 0 picks a free one")
    parser.add_argument("--rate-limit", type=int, default=500, help="requests per token per minute")
    args = parser.parse_args(argv)

    stop = threading.Event()
    # SIGTERM (e.g. from a process manager) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with CalendlySandbox(
        host=args.host, port=args.port, rate_limit_per_minute=args.rate_limit
    ) as sb:
        print(f"Calendly sandbox listening on {sb.url}", flush=True)
        print(f"Admin API: {sb.url}/_sandbox/ (loopback only)")
        for token, user_uuid in sb.tokens.items():
            print(f"  {_TOKEN_NAMES.get(token, 'token')} ({user_uuid}): {token}")
        print("Ctrl-C stops.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
