"""``python -m connectors``: list connectors, validate credentials and run actions from a shell.

    python -m connectors list
    python -m connectors calendly actions
    python -m connectors calendly validate [--base-url URL]
    python -m connectors calendly run scheduled_events --filter count=10 --filter status=active
    python -m connectors calendly resolve GetOrganizationUrl
    python -m connectors import-openapi SPEC --operations getMe getFile [--output SUBSET.json]

Results are JSON on stdout; errors are JSON on stderr with exit status 1 (2 for usage).
Secrets come from environment variables, ``<CONNECTOR>_<FIELD>`` upper-cased (e.g.
``CALENDLY_PERSONAL_ACCESS_TOKEN``), so they stay out of shell history; ``--token-env NAME``
reads another variable. ``--token`` works but warns: it lands in shell history and in the
process list. Non-secret fields come from ``--field name=value`` or the same variables.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import registry
from .base import Connector
from .errors import ConnectorError
from .openapi import OpenApi
from .ratelimit import Unlimited
from .runtime import Runtime
from .secrets import Credentials
from .spec import CredentialType


def _env_name(connector: Connector, field: str) -> str:
    return f"{connector.name}_{field}".upper().replace("-", "_").replace("/", "_")


def _pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, equals, text = value.partition("=")
        if not equals or not key.strip():
            raise SystemExit(_usage(f"{option} takes key=value, got {value!r}"))
        pairs.append((key.strip(), text))
    return pairs


def _usage(message: str) -> int:
    print(json.dumps({"error": "UsageError", "message": message}), file=sys.stderr)
    return 2


def _json_argument(value: str | None, option: str) -> Any:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as error:
        raise SystemExit(_usage(f"{option} is not JSON: {error}")) from None


def _primary_secret(ctype: CredentialType) -> str | None:
    secrets = [f.name for f in ctype.fields if f.secret]
    if len(secrets) == 1:
        return secrets[0]
    return "token" if "token" in secrets else None


def credentials_from(args: argparse.Namespace, connector: Connector) -> Credentials:
    """Credentials from flags and the environment (secrets never need a flag)."""
    ctype = connector.credential_type(args.type or connector.credential_types[0].name)
    given = dict(_pairs(args.field or [], "--field"))
    fields: dict[str, str] = {}
    secrets: dict[str, str] = {}
    primary = _primary_secret(ctype)
    if args.token is not None:
        print(
            "warning: --token puts the secret in your shell history and the process list; "
            f"prefer the {_env_name(connector, primary or 'token')} environment variable.",
            file=sys.stderr,
        )
    for field in ctype.fields:
        env = _env_name(connector, field.name)
        if field.secret:
            if field.name == primary and args.token is not None:
                value = args.token
            elif field.name == primary and args.token_env:
                value = os.environ.get(args.token_env)
            else:
                value = os.environ.get(env)
            if value:
                secrets[field.name] = value
        else:
            value = given.pop(field.name, None)
            if value is None:
                value = os.environ.get(env)
            if value is not None:
                fields[field.name] = value
    if given:
        known = ", ".join(f.name for f in ctype.fields if not f.secret)
        raise SystemExit(_usage(f"unknown --field {', '.join(given)}; fields: {known}"))
    return Credentials(type=ctype.name, fields=fields, secrets=secrets, key=f"cli:{connector.name}")


def runtime_from(args: argparse.Namespace, connector: Connector) -> Runtime:
    options: dict[str, Any] = {}
    if args.base_url:
        options["base_urls"] = {connector.name: args.base_url}
    if args.timeout is not None:
        options["read_timeout"] = args.timeout
    if args.connect_timeout is not None:
        options["connect_timeout"] = args.connect_timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    if args.allow_private:
        options["allowed_private_hosts"] = frozenset(args.allow_private)
    if args.no_rate_limit:
        options["rate_limiter"] = Unlimited()
    return Runtime(**options)


def _add_credential_options(parser: argparse.ArgumentParser, connector: Connector) -> None:
    group = parser.add_argument_group("credentials and runtime")
    group.add_argument("--type", help="credential type (default: the first declared)")
    group.add_argument(
        "--field", action="append", metavar="NAME=VALUE", help="a non-secret credential field"
    )
    group.add_argument(
        "--token-env",
        metavar="NAME",
        help="environment variable holding the secret "
        f"(default {_env_name(connector, '<field>')}, e.g. "
        f"{_env_name(connector, _primary_secret(connector.credential_types[0]) or 'token')})",
    )
    group.add_argument("--token", help=argparse.SUPPRESS)  # works, warns: prefer the env
    group.add_argument("--base-url", metavar="URL", help="send requests here instead")
    group.add_argument("--timeout", type=float, metavar="S", help="read timeout in seconds")
    group.add_argument("--connect-timeout", type=float, metavar="S")
    group.add_argument("--max-retries", type=int, metavar="N")
    group.add_argument(
        "--allow-private", action="append", metavar="HOST", help="allow a private destination"
    )
    group.add_argument("--no-rate-limit", action="store_true", help="skip the local budget")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m connectors",
        description="Run connector actions. Secrets come from <CONNECTOR>_<FIELD> variables.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    commands = parser.add_subparsers(dest="connector", metavar="{list,<connector>}")
    commands.required = True
    commands.add_parser("list", help="installed connectors")
    importer = commands.add_parser(
        "import-openapi",
        help="action declarations from an OpenAPI 3 document",
        description="Print action declarations for chosen operations of an OpenAPI 3 "
        "document and, with --output, write the subset of the document they use (what a "
        "connector vendors in its openapi/ folder).",
    )
    importer.add_argument("spec", metavar="SPEC", help="the OpenAPI document (JSON or YAML)")
    importer.add_argument(
        "--operations", nargs="*", default=[], metavar="ID", help="operationIds to import"
    )
    importer.add_argument(
        "--webhooks", nargs="*", default=[], metavar="EVENT", help="webhook events to keep"
    )
    importer.add_argument(
        "--schemas", nargs="*", default=[], metavar="NAME", help="component schemas to keep"
    )
    importer.add_argument("--output", metavar="PATH", help="write the subset document here")
    for connector in registry.all_connectors():
        sub = commands.add_parser(connector.name, help=connector.display_name)
        verbs = sub.add_subparsers(dest="command", metavar="COMMAND")
        verbs.required = True
        verbs.add_parser("actions", help="actions with their keys and schemas")
        verbs.add_parser("describe", help="the full description, as the portal's API shows it")
        validate = verbs.add_parser("validate", help="check the credential, print the account")
        _add_credential_options(validate, connector)
        run = verbs.add_parser("run", help="run an action")
        run.add_argument("action", choices=list(connector.actions), metavar="ACTION")
        run.add_argument(
            "--filter", action="append", metavar="KEY=VALUE", help="a filter row (repeatable)"
        )
        run.add_argument("--limit", type=int, help="most items to collect from a list")
        run.add_argument(
            "--document", metavar="JSON|@FILE", help="JSON body for actions taking one"
        )
        run.add_argument("--context", metavar="JSON|@FILE", help="data for {{ }} references")
        run.add_argument("--idempotency-key", metavar="KEY")
        _add_credential_options(run, connector)
        resolve = verbs.add_parser("resolve", help="evaluate a resource function")
        resolve.add_argument(
            "function", choices=list(connector.resource_functions), metavar="FUNCTION"
        )
        _add_credential_options(resolve, connector)
    return parser


def _import_openapi(args: argparse.Namespace) -> str:
    """The declaration snippet for ``args.operations`` (and the subset, if asked)."""
    try:
        spec = OpenApi.load(args.spec)
        actions = [spec.action(_snake(op), op) for op in args.operations]
        events = [e for e in args.webhooks if e in spec.webhooks()]
    except (OSError, ValueError) as error:
        raise SystemExit(_usage(str(error))) from None
    unknown = sorted(set(args.webhooks) - set(events))
    if unknown:
        raise SystemExit(_usage(f"no webhook {', '.join(unknown)} in {args.spec}"))
    lines = [f"# {len(actions)} operation(s) of {Path(args.spec).name}", "ACTIONS = spec.actions("]
    for action, operation in zip(actions, args.operations, strict=True):
        keys = ", ".join(action.keys) or "no keys"
        paging = f", {action.pagination.kind} pages" if action.pagination else ""
        lines.append(f"    # {action.method} {action.path}: {keys}{paging}")
        lines.append(f"    {action.name}={json.dumps(operation)},")
    lines.append(")")
    if events:
        lines.append(f"EVENTS = {json.dumps(events)}")
    if args.output:
        subset = spec.subset(args.operations, events, args.schemas)
        Path(args.output).write_text(json.dumps(subset, separators=(",", ":")) + "\n")
        components = sum(len(v) for v in subset["components"].values())
        lines.append(
            f"# wrote {args.output}: {len(subset['paths'])} path(s), {components} component(s)"
        )
    return "\n".join(lines)


def _snake(operation_id: str) -> str:
    """``repos/list-for-authenticated-user`` -> ``list_for_authenticated_user``;
    ``getTeamProjects`` -> ``get_team_projects``."""
    last = operation_id.rsplit("/", 1)[-1]
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", last).replace("-", "_").lower()


def _execute(args: argparse.Namespace) -> Any:
    if args.connector == "import-openapi":
        print(_import_openapi(args))
        return None
    if args.connector == "list":
        return [
            {
                "name": c.name,
                "display_name": c.display_name,
                "description": c.description,
                "actions": list(c.actions),
                "webhook_events": list(c.webhook_events),
            }
            for c in registry.all_connectors()
        ]
    connector = registry.get_connector(args.connector)
    if args.command == "actions":
        return [action.as_dict() for action in connector.actions.values()]
    if args.command == "describe":
        return connector.describe()
    credentials = credentials_from(args, connector)
    runtime = runtime_from(args, connector)
    if args.command == "validate":
        return connector.validate(credentials, runtime=runtime).as_dict()
    if args.command == "resolve":
        return {args.function: connector.resolve(args.function, credentials, runtime)}
    result = connector.run_action(
        args.action,
        credentials,
        filters=_pairs(args.filter or [], "--filter"),
        context=_json_argument(args.context, "--context"),
        document=_json_argument(args.document, "--document"),
        limit=args.limit,
        idempotency_key=args.idempotency_key,
        runtime=runtime,
    )
    return result.as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    try:
        output = _execute(args)
    except ConnectorError as error:
        print(json.dumps(error.as_dict()), file=sys.stderr)
        return 1
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if output is None:
        return 0
    try:
        json.dump(output, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # piped into head(1) and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
