"""Check recorded Calendly API exchanges against Calendly's official OpenAPI document.

Used by the sandbox's own tests and by the connector's tests alike::

    from tests.connectors.calendly.spec import assert_conforms
    assert_conforms(sb.exchanges)

The document is vendored in ``connectors/calendly/openapi/openapi.yaml`` (override with
``CALENDLY_OPENAPI_PATH``). It is required: if it is missing, ``load_spec`` raises, so tests fail
loudly instead of skipping the one check that ties the sandbox to the real API.

An exchange is anything with the attributes of ``connectors.calendly.sandbox.Exchange``:
``method``, ``path``, ``query`` (name -> list of values), ``request_headers``, ``request_body``,
``status``, ``response_headers``, ``response_body`` and optionally ``faulted``.

Validation uses openapi-core over an in-memory copy of the document with narrow repairs (see
``_repair``): each one names the defect of the 2023 document it works around, or the FACTS.md
rule that supersedes it. Nothing else is relaxed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
)
from openapi_core.validation.schemas import oas30_read_schema_validators_factory
from werkzeug.datastructures import Headers, ImmutableMultiDict

import connectors.calendly

SPEC_ENV = "CALENDLY_OPENAPI_PATH"
# The document's only server; requests are matched by path, whatever host they went to.
SERVER = "https://api.calendly.com"
ADMIN_PREFIX = "/_sandbox"
# Errors any operation may answer although not every operation declares them: 401/404/500 are
# Calendly's documented generic errors, 429 is documented in FACTS.md (rate limits) only.
GENERIC_ERRORS = {401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: None, 500: "UNKNOWN"}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# Webhook events added by Calendly after the document was written (FACTS.md).
NEWER_WEBHOOK_EVENTS = ("invitee_no_show.created", "invitee_no_show.deleted")


class SpecNotFoundError(FileNotFoundError):
    """The OpenAPI document is missing: conformance cannot be checked, so tests must fail."""


def spec_path() -> Path:
    """Where the document is: $CALENDLY_OPENAPI_PATH, else the copy vendored with the connector."""
    override = os.environ.get(SPEC_ENV)
    if override:
        return Path(override)
    return Path(connectors.calendly.__file__).resolve().parent / "openapi" / "openapi.yaml"


def _is_uri(value: object) -> bool:
    # jsonschema checks format "uri" only with optional packages installed; a URI with a scheme
    # and a host is what every "format: uri" field of this API carries.
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


FORMATS = {"uri": _is_uri}


# Loading ---------------------------------------------------------------------------------------
def _repair(document: dict[str, Any]) -> list[str]:
    """Fix the document's known defects in place; returns what was repaired (for tests)."""
    repaired = []
    components = document["components"]

    # Defect 1: seven error schemas pin title/message with ``value:``, which is not a JSON
    # Schema or OpenAPI keyword (the document fails openapi-spec-validator because of it, and a
    # validator would ignore it). The intent is a constant, so it becomes a one-item enum.
    pinned = [
        components["responses"][name]["content"]["application/json"]["schema"]
        for name in components.get("responses", {})
    ]
    conflict = document["paths"]["/webhook_subscriptions"]["post"]["responses"].get("409")
    if conflict:
        pinned.append(conflict["content"]["application/json"]["schema"])
    for schema in pinned:
        for part in schema.get("allOf", []):
            for name, prop in part.get("properties", {}).items():
                if "value" in prop:
                    prop["enum"] = [prop.pop("value")]
                    repaired.append(f"value->enum {name}")
                # Defect 2: UNAUTHENTICATED's message has ``enum: <string>`` (must be a list).
                if isinstance(prop.get("enum"), str):
                    prop["enum"] = [prop["enum"].strip()]
                    repaired.append(f"enum string->list {name}")

    # Not a defect but superseded: FACTS.md lists the invitee_no_show.* webhook events, which
    # the document predates; they are added wherever the document enumerates events.
    body = document["paths"]["/webhook_subscriptions"]["post"]["requestBody"]
    event_enums = [
        body["content"]["application/json"]["schema"]["properties"]["events"]["items"]["enum"],
        components["schemas"]["WebhookSubscription"]["properties"]["events"]["items"]["enum"],
        components["schemas"]["WebhookPayload"]["properties"]["event"]["enum"],
    ]
    for enum in event_enums:
        for event in NEWER_WEBHOOK_EVENTS:
            if event not in enum:
                enum.append(event)
                repaired.append(f"event enum +{event}")
    return repaired


@functools.cache
def load_document() -> dict[str, Any]:
    """The repaired document as plain data (parsed once per process: it is 6.5k lines)."""
    path = spec_path()
    if not path.is_file():
        raise SpecNotFoundError(
            f"Calendly's OpenAPI document is missing at {path}. Conformance tests need it: "
            f"restore it or point {SPEC_ENV} at a copy."
        )
    with path.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    _repair(document)
    return document


@functools.cache
def load_spec() -> OpenAPI:
    """The repaired document as an openapi-core ``OpenAPI`` (built once, validated once)."""
    return OpenAPI.from_dict(load_document(), config=Config(extra_format_validators=FORMATS))


@functools.cache
def _validators() -> tuple[V30RequestParametersValidator, V30RequestBodyValidator]:
    # Parameters and body are validated without openapi-core's security step: it cannot
    # evaluate the document's oauth2 scheme and would then stop before the parameters.
    spec = load_spec().spec
    return (
        V30RequestParametersValidator(spec, extra_format_validators=FORMATS),
        V30RequestBodyValidator(spec, extra_format_validators=FORMATS),
    )


@functools.cache
def _operations() -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) per path; literal templates (/users/me) before templated ones."""
    templates = sorted(load_document()["paths"], key=lambda t: (t.count("{"), t))
    return [
        (re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(t)) + "$"), t)
        for t in templates
    ]


def operation_template(method: str, path: str) -> str | None:
    """The document's path template for a request (e.g. ``/users/{uuid}``), if it has one
    with that method; handy for asserting which operations a test exercised."""
    found = _operation(method, path)
    return found[0] if found is not None and found[1] is not None else None


def _operation(method: str, path: str) -> tuple[str, dict[str, Any] | None] | None:
    """(template, operation or None if the method is not defined), or None for unknown paths."""
    for regex, template in _operations():
        if regex.match(path):
            return template, load_document()["paths"][template].get(method.lower())
    return None


# Adapters --------------------------------------------------------------------------------------
def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


class _Request:
    """openapi-core's Request protocol over a recorded exchange."""

    def __init__(self, exchange: Any) -> None:
        self.host_url = SERVER
        self.path = exchange.path
        self.method = exchange.method.lower()
        self.body = exchange.request_body or None
        self.content_type = (
            _header(exchange.request_headers, "Content-Type") or "application/json"
        ).lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(
                [(name, value) for name, values in exchange.query.items() for value in values]
            ),
            header=Headers(list(exchange.request_headers.items())),
        )


class _Response:
    """openapi-core's Response protocol over a recorded exchange."""

    def __init__(self, exchange: Any) -> None:
        self.status_code = exchange.status
        self.headers = Headers(list(exchange.response_headers.items()))
        self.content_type = (
            _header(exchange.response_headers, "Content-Type") or "application/json"
        ).lower()
        self.data = exchange.response_body or None


def _label(exchange: Any) -> str:
    query = urlencode([(k, v) for k, vs in exchange.query.items() for v in vs])
    target = f"{exchange.path}?{query}" if query else exchange.path
    return f"{exchange.method} {target} -> {exchange.status}"


def _messages(error: Exception, where: str) -> list[str]:
    """Flatten an openapi-core error into one line per underlying schema error."""
    cause = error.__cause__ if error.__cause__ is not None else error
    schema_errors = getattr(cause, "schema_errors", None) or getattr(error, "schema_errors", None)
    if not schema_errors:
        return [f"{where}: {cause}"]
    lines = []
    for schema_error in schema_errors:
        location = ".".join(str(p) for p in schema_error.absolute_path)
        lines.append(f"{where}{'.' + location if location else ''}: {schema_error.message}")
    return lines


def _where(error: Exception, default: str) -> str:
    name = getattr(error, "name", None)
    return f"query parameter {name!r}" if name else default


# Checks ----------------------------------------------------------------------------------------
def _is_admin(exchange: Any) -> bool:
    return exchange.path == ADMIN_PREFIX or exchange.path.startswith(ADMIN_PREFIX + "/")


def check_request(exchange: Any) -> list[str]:
    """Problems with the request: unknown path or method, missing bearer token, required or
    invalid query parameters, invalid JSON body. Empty means it conforms."""
    if _is_admin(exchange):
        return []
    label = _label(exchange)
    found = _operation(exchange.method, exchange.path)
    if found is None:
        return [f"{label}: path {exchange.path} is not in the Calendly API"]
    template, operation = found
    if operation is None:
        return [f"{label}: {exchange.method} is not defined for {template}"]
    problems = []
    authorization = _header(exchange.request_headers, "Authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        problems.append(f"{label}: no 'Authorization: Bearer <token>' header")
    request = _Request(exchange)
    parameters, body = _validators()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for error in parameters.iter_errors(request):
            if isinstance(error, PathError):
                return [*problems, f"{label}: {error}"]
            problems.extend(f"{label}: {m}" for m in _messages(error, _where(error, "request")))
        if "requestBody" in operation:
            for error in body.iter_errors(request):
                problems.extend(f"{label}: {m}" for m in _messages(error, "request body"))
    return problems


def check_response(exchange: Any) -> list[str]:
    """Problems with the answer: status not declared for the operation (nor a generic error),
    body not JSON or not valid against the declared schema. Empty means it conforms."""
    if _is_admin(exchange):
        return []
    label = _label(exchange)
    found = _operation(exchange.method, exchange.path)
    if found is None or found[1] is None:
        return [f"{label}: no such operation in the Calendly API"]
    template, operation = found
    problems = []
    status, body = exchange.status, exchange.response_body or b""
    content_type = (_header(exchange.response_headers, "Content-Type") or "").lower()
    if status == 204:
        if body:
            problems.append(f"{label}: a 204 answer must have no body")
        return problems
    if not content_type.startswith("application/json"):
        return [f"{label}: Content-Type is {content_type!r}, not application/json"]
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return [f"{label}: body is not JSON ({error})"]

    declared = operation.get("responses", {})
    if str(status) in declared or "default" in declared:
        app = load_spec()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for error in app.iter_response_errors(_Request(exchange), _Response(exchange)):
                problems.extend(f"{label}: {m}" for m in _messages(error, "body"))
    elif status in GENERIC_ERRORS:
        problems.extend(f"{label}: {m}" for m in _check_generic_error(status, data))
    else:
        listed = ", ".join(sorted(declared))
        problems.append(f"{label}: status {status} is not declared for {template} ({listed})")
    if status == 429:
        missing = [h for h in RATE_LIMIT_HEADERS if _header(exchange.response_headers, h) is None]
        if missing:
            problems.append(f"{label}: 429 without {', '.join(missing)} (FACTS.md)")
    return problems


@functools.cache
def _generic_validator(status: int):
    spec = load_spec().spec
    component = GENERIC_ERRORS[status]
    if component is None:
        schema = spec / "components" / "schemas" / "ErrorResponse"
    else:
        schema = (
            spec / "components" / "responses" / component / "content" / "application/json"
        ) / "schema"
    return oas30_read_schema_validators_factory.create(
        spec, schema, extra_format_validators=FORMATS
    )


def _check_generic_error(status: int, data: Any) -> list[str]:
    try:
        _generic_validator(status).validate(data)
    except Exception as error:  # InvalidSchemaValue, carrying the schema errors
        return _messages(error, f"body ({status} generic error)")
    return []


def check_webhook_body(body: bytes) -> list[str]:
    """Problems with a webhook delivery body against the document's ``WebhookPayload``."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return [f"webhook body is not JSON ({error})"]
    try:
        _schema_validator("WebhookPayload").validate(data)
    except Exception as error:  # InvalidSchemaValue, carrying the schema errors
        return _messages(error, "webhook body")
    return []


@functools.cache
def _schema_validator(name: str):
    spec = load_spec().spec
    schema: SchemaPath = spec / "components" / "schemas" / name
    return oas30_read_schema_validators_factory.create(
        spec, schema, extra_format_validators=FORMATS
    )


def assert_conforms(exchanges: Iterable[Any], *, check_rejected_requests: bool = False) -> int:
    """Fail with every problem found in ``exchanges``; returns how many were checked.

    Faulted exchanges (injected failures) and the sandbox's own ``/_sandbox/`` calls are not
    Calendly's behaviour and are skipped. Requests the API rejected with a 4xx are usually
    provoked on purpose (a missing parameter to get the 400), so their requests are checked
    only with ``check_rejected_requests=True``; their answers are always checked.
    """
    problems: list[str] = []
    checked = 0
    for exchange in exchanges:
        if getattr(exchange, "faulted", False) or _is_admin(exchange):
            continue
        checked += 1
        if check_rejected_requests or not 400 <= exchange.status < 500:
            problems.extend(check_request(exchange))
        problems.extend(check_response(exchange))
    if problems:
        raise AssertionError(
            f"{len(problems)} conformance problem(s) in {checked} exchange(s):\n  "
            + "\n  ".join(problems)
        )
    return checked
