"""``connect-agent`` (and ``python -m agent``): register, run, status, reset-password.

Every command takes ``--data DIR`` (else ``$CONNECT_AGENT_DATA``, else ``~/.connect-agent``);
the first command that opens a data folder creates it, its key files and the local account.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading

from agent import VERSION, config

USERNAME = "admin"
DEFAULT_LISTEN = "127.0.0.1:8765"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connect-agent",
        description="The Connect Portal On-Premise agent: runs processflows deployed to it, "
        "with credentials that never leave this server.",
    )
    parser.add_argument("--version", action="version", version=f"connect-agent {VERSION}")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "--data",
        help=f"the data folder (default ${config.DATA_ENV}, else {config.DEFAULT_DATA})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser(
        "register", parents=[data], help="pair this agent with an organization"
    )
    register.add_argument("--portal", required=True, help="the portal's URL, https://…")
    register.add_argument("--key", required=True, help="the registration key made in the portal")
    register.add_argument("--name", help="the agent's name in the portal (default: host name)")
    register.add_argument(
        "--allow-http",
        action="store_true",
        help="accept a plain-HTTP portal URL on another host (trying it out only: the "
        "agent's secret would cross the network in clear)",
    )
    run = commands.add_parser("run", parents=[data], help="run the work loop and the local UI")
    run.add_argument(
        "--listen",
        default=os.environ.get("CONNECT_AGENT_LISTEN", DEFAULT_LISTEN),
        help=f"where the local UI listens (default {DEFAULT_LISTEN}, env CONNECT_AGENT_LISTEN)",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("CONNECT_AGENT_CONCURRENCY", "8")),
        help="runs executed at once (default 8, env CONNECT_AGENT_CONCURRENCY)",
    )
    commands.add_parser("status", parents=[data], help="print what this agent knows")
    reset = commands.add_parser(
        "reset-password", parents=[data], help="give the local account a new password"
    )
    reset.add_argument("--username", default=USERNAME)
    return parser


def _setup(data: str | None) -> None:
    """Point Django at the agent's settings and this data folder, and migrate it."""
    if data:
        os.environ[config.DATA_ENV] = data
    # The agent has only its own settings, whatever the environment says (a portal's shell).
    os.environ["DJANGO_SETTINGS_MODULE"] = "agent.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    config.store_key()  # created at first start, before anything needs it


def _new_password() -> str:
    return secrets.token_urlsafe(15)


def _ensure_account() -> None:
    """Create the local account at first start; its password is printed this once."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if User.objects.exists():
        return
    password = _new_password()
    User.objects.create_superuser(USERNAME, password=password)
    print(
        f"Created the agent's local account: user {USERNAME!r}, password {password}\n"
        "It is shown only this once; 'connect-agent reset-password' makes a new one.",
        flush=True,
    )


def _portal_url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` is no portal URL to send the agent's secret to (None: it is)."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"--portal takes the portal's URL, e.g. https://portal.example.com, not {url!r}"
    if parts.scheme == "http" and not allow_http:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            return (
                f"{url} is plain HTTP: the agent's secret would cross the network in clear. "
                "Use the portal's https:// URL (or --allow-http to try it out)."
            )
    return None


def cmd_register(args) -> int:
    from agent.client import PortalError
    from agent.work import register

    problem = _portal_url_problem(args.portal, allow_http=args.allow_http)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    _ensure_account()
    try:
        row = register(portal_url=args.portal, key=args.key, name=args.name)
    except PortalError as error:
        print(f"Registration failed: {error}", file=sys.stderr)
        return 1
    print(
        f"Registered as agent {row.name!r} of {row.organization_name or row.organization_slug}"
        f" (group {row.group_name!r}) at {row.portal_url}.\n"
        "Start it with: connect-agent run"
    )
    return 0


def cmd_run(args) -> int:
    import logging

    from agent.local import store
    from agent.server import UIServer, parse_listen
    from agent.work import Worker

    logger = logging.getLogger("agent")
    _ensure_account()
    try:
        host, port = parse_listen(args.listen)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    ui = UIServer(host, port)
    ui.start()
    print(f"Local UI on {ui.url}", flush=True)
    registration = store.registration()
    worker = None
    if registration is None:
        print(
            "Not registered yet: only the local UI runs. Register with "
            "'connect-agent register --portal URL --key KEY', then start again.",
            flush=True,
        )
    else:
        worker = Worker(
            registration,
            concurrency=args.concurrency,
            heartbeat_seconds=float(os.environ.get("CONNECT_AGENT_HEARTBEAT_SECONDS", "15")),
        )
        worker.start()
        print(
            f"Working for {registration.portal_url} as {registration.name!r} "
            f"(up to {worker.concurrency} runs at once).",
            flush=True,
        )
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    logger.info("stopping: running jobs finish, unsent reports are kept")
    if worker is not None:
        worker.stop()
    ui.stop()
    return 0


def cmd_status(args) -> int:
    from agent.local import store
    from agent.local.models import Application, Connection, OutboxItem

    print(f"Data folder: {config.data_dir()}")
    print(f"Version: {VERSION}")
    row = store.registration()
    if row is None:
        print("Registration: none (connect-agent register --portal URL --key KEY)")
    else:
        print(f"Registration: agent {row.name!r} (id {row.agent_id}) at {row.portal_url}")
        print(f"Organization: {row.organization_name or row.organization_slug}")
        print(f"Group: {row.group_name}")
        seen = row.last_contact_at.isoformat() if row.last_contact_at else "never"
        print(f"Last contact with the portal: {seen}")
        if row.last_error:
            print(f"Last problem: {row.last_error}")
    apps = list(Application.objects.all())
    print("Applications:" + ("" if apps else " none reported by the portal yet"))
    for app in apps:
        print(f"  [{'x' if app.enabled else ' '}] {app.title} ({app.name})")
    connections = list(Connection.objects.all())
    print("Connections:" + ("" if connections else " none"))
    for c in connections:
        print(f"  {c.application}/{c.name}: {c.get_status_display()}")
    print(f"Reports waiting for the portal: {OutboxItem.objects.count()}")
    return 0


def cmd_reset_password(args) -> int:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = User.objects.filter(username=args.username).first()
    password = _new_password()
    if user is None:
        User.objects.create_superuser(args.username, password=password)
    else:
        user.set_password(password)
        user.save(update_fields=["password"])
    print(f"New password for {args.username!r}: {password}\nIt is shown only this once.")
    return 0


COMMANDS = {
    "register": cmd_register,
    "run": cmd_run,
    "status": cmd_status,
    "reset-password": cmd_reset_password,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Everything the agent writes (the store, its journal, the key files) is its user's only.
    os.umask(0o077)
    try:
        _setup(args.data)
    except config.UnsafeKeyFile as error:
        print(f"connect-agent: {error}", file=sys.stderr)
        return 1
    return COMMANDS[args.command](args)
