"""``make demo``: the portal wired to a Calendly sandbox, to walk the seed's flow in minutes.

Starts from scratch every time under ``var/demo/`` (SQLite and the file broker, whatever
``DATABASE_URL`` or ``REDIS_URL`` say: the sandbox keeps its subscriptions in memory, so
older demo data would point at subscriptions it no longer has). Prints where to log in, the
password, the Calendly token to paste, and how to make the sandbox send a booking. Ctrl-C
(or SIGTERM) stops the portal's processes and the sandbox.

    python scripts/demo.py [--addr 127.0.0.1:8000] [--sandbox-port 8900]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.calendly.sandbox import CalendlySandbox, seed  # noqa: E402


class Stop(Exception):
    """SIGTERM, handled as Ctrl-C is."""


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:8000", help="where the portal listens")
    parser.add_argument("--sandbox-port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument(
        "--var-dir", type=Path, default=ROOT / "var" / "demo", help="emptied, then used"
    )
    args = parser.parse_args(argv)

    def terminate(*_):
        raise Stop

    signal.signal(signal.SIGTERM, terminate)
    var = args.var_dir.resolve()
    shutil.rmtree(var, ignore_errors=True)
    sandbox = CalendlySandbox(port=args.sandbox_port)
    try:
        sandbox.start()
    except OSError as error:
        raise SystemExit(
            f"The Calendly sandbox cannot listen on port {args.sandbox_port} ({error.strerror}); "
            "choose another with SANDBOX_PORT=..."
        ) from None
    runall = None
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            PORTAL_VAR_DIR=str(var),
            CALENDLY_API_BASE_URL=sandbox.url,
            # Processflow steps may post to destinations on this machine (a REST credential
            # whose base URL is a local test server); the sandbox itself needs no exception.
            PORTAL_ALLOWED_PRIVATE_HOSTS=env.get("PORTAL_ALLOWED_PRIVATE_HOSTS", "127.0.0.1"),
        )
        os.environ.clear()
        os.environ.update(env)  # the settings that runall's import reads are the demo's
        from portal.ops.management.commands.runall import base_url_for

        portal_url = env.get("PORTAL_BASE_URL") or base_url_for(args.addr)
        print(f"Preparing a fresh demo in {var} ...", flush=True)
        manage(env, "migrate", "--no-input")
        password = ""
        for line in manage(env, "bootstrap", "--org-name", "Demo").splitlines():
            if "generated password: " in line:
                password = line.rsplit(": ", 1)[1]
        fire = json.dumps({"event": "invitee.created", "payload": {"email": "ada@example.com"}})
        print(
            f"""
  Connect Portal demo
  -------------------
  Portal           {portal_url}/
  Log in as        admin@example.com
  Password         {password}
  Calendly sandbox {sandbox.url}  (stands in for api.calendly.com)
  Token to paste   {seed.OWNER_TOKEN}
                   (Manage > App > Calendly > Credential > REST > Add New Credential)

  After deploying a triggered processflow, make the sandbox send a booking:
    curl -X POST {sandbox.url}/_sandbox/fire -H 'Content-Type: application/json' \\
         -d '{fire}'

  Ctrl-C stops everything.
""",
            flush=True,
        )
        runall = subprocess.Popen(  # noqa: S603 (our own manage.py)
            [sys.executable, "manage.py", "runall", "--addr", args.addr], cwd=ROOT, env=env
        )
        return runall.wait()
    except (KeyboardInterrupt, Stop):
        # Ctrl-C in a terminal reaches runall too, which stops its processes; SIGTERM sent to
        # this script alone is passed on.
        if runall is not None and runall.poll() is None:
            runall.send_signal(signal.SIGTERM)
        return 0
    finally:
        if runall is not None:
            try:
                runall.wait(timeout=30)
            except subprocess.TimeoutExpired:
                runall.kill()
                runall.wait()
        sandbox.stop()
        print("Demo stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
