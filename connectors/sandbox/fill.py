"""Answers that satisfy an application's own schemas, from the few fields a sandbox cares about.

Real resources carry dozens of required fields (a GitHub repository has 73). A sandbox keeps
what its behaviour needs (ids, names, states, who owns what) and ``fill`` completes the rest
from the operation's schema in the vendored OpenAPI document: every required property gets
a value of its declared type (null where allowed, the first of an enum, a URL under the
sandbox for URIs), nested objects and list items are completed the same way. So answers
validate against the document, and the sandbox stays a short declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIXED_TIME = "2025-01-01T00:00:00Z"
_MISSING = object()


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    return list(kind) if isinstance(kind, list) else [kind] if isinstance(kind, str) else []


def _nullable(schema: Mapping[str, Any]) -> bool:
    branches = schema.get("anyOf") or schema.get("oneOf") or []
    return "null" in _types(schema) or any(
        isinstance(b, Mapping) and _types(b) == ["null"] for b in branches
    )


def _branch(schema: Mapping[str, Any], value: Any) -> Mapping[str, Any] | None:
    """The ``oneOf``/``anyOf`` branch to complete ``value`` with (the first that fits its
    kind; the first non-null one when there is no value yet)."""
    branches = [
        b for b in schema.get("oneOf") or schema.get("anyOf") or [] if isinstance(b, Mapping)
    ]
    wanted = {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value))
    for branch in branches:
        kinds = _types(branch) or (["object"] if "properties" in branch else [])
        if value is _MISSING and kinds != ["null"]:
            return branch
        if wanted and wanted in kinds:
            return branch
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and {"integer", "number"} & set(kinds):
            return branch
    return None


def _default(schema: Mapping[str, Any], name: str, base_url: str) -> Any:
    if "const" in schema:
        return schema["const"]
    if _nullable(schema):
        return None
    enum = [v for v in schema.get("enum") or [] if v is not None]
    if enum:
        return enum[0]
    kinds = _types(schema) or (["object"] if "properties" in schema else [])
    kind = kinds[0] if kinds else None
    if kind == "string":
        form = schema.get("format")
        if form == "date-time":
            return FIXED_TIME
        if form in ("uri", "uri-template", "url"):
            return f"{base_url}/{name or 'resource'}"
        if form == "email":
            return "sandbox@example.com"
        return "x" * int(schema.get("minLength") or 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return None


def fill(schema: Any, value: Any = _MISSING, *, base_url: str) -> Any:
    """A copy of ``value`` completed so that it satisfies ``schema`` (references already
    inlined, as ``connectors.openapi.OpenApi.schema`` gives them); values given are kept as
    they are, and ``value`` itself is left alone (records shared by several answers)."""
    return _fill(schema, value, base_url=base_url, name="")


def _fill(schema: Any, value: Any = _MISSING, *, base_url: str, name: str = "") -> Any:
    if not isinstance(schema, Mapping):
        return None if value is _MISSING else value
    for part in schema.get("allOf") or []:
        value = _fill(part, value, base_url=base_url, name=name)
    if value is None:
        return None
    branch = _branch(schema, value)
    if branch is not None:
        return _fill(branch, value, base_url=base_url, name=name)
    if value is _MISSING:
        value = _default(schema, name, base_url)
    if isinstance(value, dict):
        value = dict(value)  # one record may sit in several places, under different schemas
        properties = schema.get("properties") or {}
        for prop in schema.get("required") or []:
            if prop not in value:
                value[prop] = _fill(properties.get(prop, {}), base_url=base_url, name=prop)
        for prop, item in list(value.items()):
            if prop in properties and isinstance(item, dict | list):
                value[prop] = _fill(properties[prop], item, base_url=base_url, name=prop)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        value = [_fill(schema["items"], item, base_url=base_url, name=name) for item in value]
    return value
