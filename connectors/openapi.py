"""OpenAPI import: an application's own description of its API turned into action declarations.

A connector loads its vendored OpenAPI 3 document (or the subset of it that it uses) and
names the operations it wants::

    spec = OpenApi.load(Path(__file__).parent / "openapi" / "rest.json")
    ACTIONS = spec.actions(
        user="users/get-authenticated",
        list_repos="repos/list-for-authenticated-user",
        create_issue=("issues/create", {"label": "Open an issue"}),
    )

Each action gets the operation's method and path, its path and query parameters with their
JSON Schemas, its JSON request body (one body parameter per top-level property, or the whole
document when the body is not an object), its answer's schema (``output_schema``) and a
pagination strategy guessed from what the operation declares (a ``Link`` response header,
``page``/``per_page``, ``offset``/``limit``). Anything a spec gets wrong is overridden per
action (``label``, ``help``, ``pagination``, ``params``: replacements by name) or written
by hand as an ``Action``.

The same object checks recorded exchanges against the document (``problems``): the tests
of a sandbox and a connector validate every answer against the application's own schemas.
``subset`` keeps only chosen operations and webhooks with the components they use, which is
what a connector vendors (``python -m connectors import-openapi``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .pagination import LinkHeaderPagination, OffsetPagination, PageNumberPagination
from .spec import FORMAT_CHECKER, Action, Param

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEPTH = 12  # schemas nested deeper are cut to {} (recursive components)


class OpenApiError(ValueError):
    """The document does not have what a declaration asks of it."""


class OpenApi:
    """One OpenAPI 3.0 or 3.1 document, read-only."""

    def __init__(self, document: Mapping[str, Any], *, source: str = "") -> None:
        if not str(document.get("openapi", "")).startswith("3."):
            raise OpenApiError(f"{source or 'the document'} is not an OpenAPI 3 document")
        self.document = document
        self.source = source
        self.nullable_keyword = str(document["openapi"]).startswith("3.0")

    @classmethod
    def load(cls, path: str | Path) -> OpenApi:
        """Read a JSON or YAML document from ``path`` (inside the repository)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return cls(data, source=path.name)

    # Operations -------------------------------------------------------------------------------
    @cached_property
    def operations(self) -> dict[str, tuple[str, str, Mapping[str, Any]]]:
        """operationId -> (METHOD, path template, operation)."""
        found = {}
        for path, item in (self.document.get("paths") or {}).items():
            for method in METHODS:
                operation = item.get(method)
                if isinstance(operation, Mapping) and operation.get("operationId"):
                    shared = item.get("parameters") or []
                    merged = {
                        **operation,
                        "parameters": [*shared, *operation.get("parameters", [])],
                    }
                    found[operation["operationId"]] = (method.upper(), path, merged)
        return found

    def operation(self, operation_id: str) -> tuple[str, str, Mapping[str, Any]]:
        try:
            return self.operations[operation_id]
        except KeyError:
            raise OpenApiError(f"{self.source}: no operation {operation_id!r}") from None

    def component(self, name: str) -> Any:
        """The schema ``components/schemas/<name>``, references inlined."""
        return self.schema(self.ref(f"#/components/schemas/{name}"))

    def ref(self, pointer: str) -> Any:
        """The component a local ``$ref`` (``#/components/schemas/x``) points at."""
        if not pointer.startswith("#/"):
            raise OpenApiError(f"only local references are followed, not {pointer!r}")
        node: Any = self.document
        for part in pointer[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _deref(self, node: Any) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            node = self.ref(node["$ref"])
        return node

    def schema(self, node: Any, depth: int = 0) -> Any:
        """``node`` with references inlined and OpenAPI 3.0's ``nullable`` as JSON Schema,
        so ``jsonschema`` validates with it; examples and docs-only keys dropped."""
        if depth > _DEPTH:
            return {}
        if isinstance(node, list):
            return [self.schema(item, depth + 1) for item in node]
        if not isinstance(node, Mapping):
            return node
        if "$ref" in node:
            return self.schema(self.ref(node["$ref"]), depth + 1)
        out = {
            key: self.schema(value, depth + 1) if key not in ("properties", "enum") else value
            for key, value in node.items()
            if key not in ("example", "examples", "xml", "externalDocs", "discriminator")
            and not key.startswith("x-")
        }
        if "properties" in node:
            out["properties"] = {
                name: self.schema(value, depth + 1) for name, value in node["properties"].items()
            }
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(out.get(bound), bool):  # OpenAPI 3.0's form; JSON Schema's is a number
                out.pop(bound)
        if self.nullable_keyword and out.pop("nullable", False):
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
            elif "type" not in out:
                out = {"anyOf": [out, {"type": "null"}]}
        return out

    def _parameters(self, operation: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [self._deref(p) for p in operation.get("parameters") or []]

    def _json(self, content: Mapping[str, Any] | None) -> Any:
        for media, body in (content or {}).items():
            if media.split(";")[0].strip() in ("application/json", "*/*") or media.endswith(
                "+json"
            ):
                return body.get("schema")
        return None

    def response(self, operation_id: str, status: int | None = None) -> tuple[int, Any, dict]:
        """(status, schema or None, headers) of the operation's answer: ``status``'s, or the
        first success it declares."""
        _, _, operation = self.operation(operation_id)
        responses = operation.get("responses") or {}
        codes = [str(status)] if status else sorted(c for c in responses if c.startswith("2"))
        for code in codes:
            answer = self._deref(responses.get(code) or responses.get(f"{code[0]}XX"))
            if answer is not None:
                schema = self._json(answer.get("content"))
                headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
                return int(code), (self.schema(schema) if schema else None), headers
        raise OpenApiError(f"{operation_id} declares no answer {status or '2xx'}")

    # Actions ----------------------------------------------------------------------------------
    def action(
        self,
        name: str,
        operation_id: str,
        *,
        label: str | None = None,
        help: str | None = None,
        pagination: Any = "auto",
        params: Mapping[str, Param] | None = None,
        **overrides: Any,
    ) -> Action:
        """The action for one operation (see the module's docstring)."""
        method, path, operation = self.operation(operation_id)
        built: list[Param] = []
        for parameter in self._parameters(operation):
            location = parameter.get("in")
            if location not in ("path", "query") or not _NAME.match(parameter.get("name", "")):
                continue  # headers and cookies are the connector's business
            built.append(
                Param(
                    parameter["name"],
                    location,
                    self.schema(parameter.get("schema") or {"type": "string"}),
                    required=bool(parameter.get("required")) or location == "path",
                    help=_sentence(parameter.get("description", "")),
                )
            )
        body = self._deref(operation.get("requestBody") or {})
        body_schema = self.schema(self._json(body.get("content")) or {})
        accepts_document = False
        if isinstance(body_schema, Mapping) and body_schema.get("properties"):
            required = set(body_schema.get("required") or ())
            for prop, schema in body_schema["properties"].items():
                if _NAME.match(prop) and prop not in {p.name for p in built}:
                    built.append(
                        Param(
                            prop,
                            "body",
                            _without_docs(schema),
                            required=prop in required,
                            help=_sentence(schema.get("description", "")),
                        )
                    )
        elif body_schema:
            accepts_document = True
        replaced = dict(params or {})
        built = [replaced.pop(p.name, p) for p in built] + list(replaced.values())
        _, output, headers = self.response(operation_id)
        if pagination == "auto":
            pagination = _guess_pagination(built, output, headers)
        summary = operation.get("summary") or operation_id
        return Action(
            name=name,
            label=label or summary,
            method=method,
            path=path,
            params=tuple(built),
            output_schema=output if output is not None else {"type": "null"},
            help=help or f"{_sentence(operation.get('description') or summary)} {method} {path}.",
            pagination=pagination,
            accepts_document=accepts_document,
            **overrides,
        )

    def actions(self, **operations: str | tuple[str, Mapping[str, Any]]) -> tuple[Action, ...]:
        """Actions by name: ``name="operation-id"`` or ``name=("operation-id", overrides)``."""
        built = []
        for name, spec in operations.items():
            operation_id, options = (spec, {}) if isinstance(spec, str) else spec
            built.append(self.action(name, operation_id, **options))
        return tuple(built)

    # Webhooks (OpenAPI 3.1 ``webhooks``) ------------------------------------------------------
    def webhooks(self) -> dict[str, Mapping[str, Any]]:
        """Event name -> the webhook's operation; ``issues/opened`` is ``issues.opened``,
        ``pull-request/opened`` is ``pull_request.opened``."""
        found = {}
        for item in (self.document.get("webhooks") or {}).values():
            for method in METHODS:
                operation = item.get(method)
                if isinstance(operation, Mapping) and operation.get("operationId"):
                    found[_event(operation["operationId"])] = operation
        return found

    def webhook_events(self, *topics: str) -> tuple[str, ...]:
        """The document's webhook events under ``topics`` (all without), sorted."""
        names = self.webhooks()
        return tuple(
            sorted(n for n in names if not topics or n.split(".")[0] in topics or n in topics)
        )

    def webhook_schema(self, event: str) -> Any:
        operation = self.webhooks().get(event)
        if operation is None:
            raise OpenApiError(f"{self.source}: no webhook {event!r}")
        body = self._deref(operation.get("requestBody") or {})
        return self.schema(self._json(body.get("content")) or {})

    # Conformance ------------------------------------------------------------------------------
    def find(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """(operationId, path parameters) of the operation serving ``method path``."""
        best = None
        for operation_id, (verb, template, _) in self.operations.items():
            if verb != method.upper():
                continue
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            match = re.fullmatch(pattern, path)
            # The most literal template wins (/user/repos before /user/{x}).
            if match and (best is None or template.count("{") < best[2]):
                best = (operation_id, match.groupdict(), template.count("{"))
        return (best[0], best[1]) if best else None

    def problems(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Iterable[str]] | None = None,
        request_body: Any = None,
        status: int,
        response_body: Any = None,
    ) -> list[str]:
        """What in one exchange the document does not allow (empty: it conforms)."""
        found = self.find(method, path)
        if found is None:
            return [f"{method} {path}: no operation of {self.source} serves it"]
        operation_id, _ = found
        _, _, operation = self.operation(operation_id)
        problems = []
        declared = {p.get("name"): p for p in self._parameters(operation) if p.get("in") == "query"}
        for name, values in (query or {}).items():
            if name not in declared:
                problems.append(f"{operation_id}: undeclared query parameter {name!r}")
                continue
            schema = self.schema(declared[name].get("schema") or {})
            for value in values:
                if not _text_fits(value, schema):
                    problems.append(f"{operation_id}: query {name}={value!r} does not fit {schema}")
        body = self._deref(operation.get("requestBody") or {})
        body_schema = self._json(body.get("content"))
        if request_body is not None and body_schema is not None:
            problems += _validate(self.schema(body_schema), request_body, f"{operation_id} request")
        try:
            _, schema, _ = self.response(operation_id, status)
        except OpenApiError as error:
            return [*problems, str(error)]
        if schema is not None and response_body is not None:
            problems += _validate(schema, response_body, f"{operation_id} {status}")
        return problems

    # Subsets ----------------------------------------------------------------------------------
    def subset(
        self,
        operations: Iterable[str] = (),
        webhooks: Iterable[str] = (),
        schemas: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A smaller document with only ``operations`` (by id), ``webhooks`` (by event
        name) and ``schemas`` (component names, e.g. payloads no operation refers to) and
        every component they use; examples are left out."""
        wanted = set(operations)
        events = set(webhooks)
        paths: dict[str, Any] = {}
        for operation_id in sorted(wanted):
            method, path, _ = self.operation(operation_id)
            item = self.document["paths"][path]
            kept = paths.setdefault(path, {k: v for k, v in item.items() if k not in METHODS})
            kept[method.lower()] = item[method.lower()]
        hooks = {}
        for key, item in (self.document.get("webhooks") or {}).items():
            for method in METHODS:
                op = item.get(method)
                if isinstance(op, Mapping) and _event(op.get("operationId", "")) in events:
                    hooks[key] = item
        document: dict[str, Any] = {
            k: v
            for k, v in self.document.items()
            if k not in ("paths", "webhooks", "components") and not k.startswith("x-")
        }
        document["paths"] = paths
        if hooks:
            document["webhooks"] = hooks
        components: dict[str, dict[str, Any]] = {}
        pending = _refs([paths, hooks]) | {f"#/components/schemas/{name}" for name in schemas}
        seen: set[str] = set()
        while pending:
            pointer = pending.pop()
            if pointer in seen or not pointer.startswith("#/components/"):
                continue
            seen.add(pointer)
            _, _, kind, name = pointer.split("/", 3)
            if kind == "examples":
                continue
            node = self.ref(pointer)
            components.setdefault(kind, {})[name] = node
            pending |= _refs(node)
        document["components"] = {
            kind: dict(sorted(items.items())) for kind, items in sorted(components.items())
        }
        return _strip_examples(document)


def _event(operation_id: str) -> str:
    """A webhook's event name as its deliveries give it: ``pull-request/ready-for-review`` is
    ``pull_request.ready_for_review`` (GitHub: ``X-GitHub-Event: pull_request``, action
    ``ready_for_review``)."""
    return operation_id.replace("-", "_").replace("/", ".")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if isinstance(item.get("$ref"), str):
                found.add(item["$ref"])
            stack.extend(v for k, v in item.items() if k != "examples")
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _strip_examples(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _strip_examples(v) for k, v in node.items() if k != "examples"}
    if isinstance(node, list):
        return [_strip_examples(v) for v in node]
    return copy.copy(node)


def _without_docs(schema: Any) -> Any:
    return (
        {k: v for k, v in schema.items() if k != "description"}
        if isinstance(schema, Mapping)
        else schema
    )


def _sentence(text: str) -> str:
    """The first sentence of a description, without Markdown links."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", " ".join(str(text).split()))
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match.group(1) if match else text)[:300]


def _guess_pagination(params: list[Param], output: Any, headers: Mapping[str, Any]) -> Any:
    """The strategy an operation's declaration implies, for list answers only."""
    if not isinstance(output, Mapping) or output.get("type") != "array":
        return None
    names = {p.name for p in params if p.location == "query"}
    if "link" in headers:
        return LinkHeaderPagination(size_param="per_page" if "per_page" in names else None)
    if "page" in names:
        size = next((n for n in ("per_page", "page_size", "limit") if n in names), None)
        return PageNumberPagination(size_param=size)
    if "offset" in names:
        return OffsetPagination(size_param="limit" if "limit" in names else None)
    return None


def _validate(schema: Any, instance: Any, where: str) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    return [
        f"{where}: {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message[:200]}"
        for error in validator.iter_errors(instance)
    ]


def _text_fits(value: str, schema: Any) -> bool:
    """Whether a query string value can be the schema's type."""
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    kinds = kind if isinstance(kind, list) else [kind]
    if "integer" in kinds and re.fullmatch(r"-?\d+", value):
        return True
    if "number" in kinds and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return True
    if "boolean" in kinds and value in ("true", "false"):
        return True
    if "string" in kinds or kind is None:
        enum = schema.get("enum") if isinstance(schema, Mapping) else None
        return not enum or value in enum
    return "array" in kinds
