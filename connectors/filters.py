"""Action filters: key/value rows turned into a checked, typed action input.

Rows come from the portal's action editor (as in APPSeCONNECT)::

    [("events[]", "invitee.created"), ("events[]", "invitee.canceled"),
     ("scope", "organization"), ("organization", "~{GetOrganizationUrl}~"),
     ("url", "https://portal.example.com/hooks/abc")]

* ``key[]`` rows build a list, ``key.sub`` rows an object (e.g. the REST ``query``);
* ``~{Name}~`` is replaced by the connector's resource function ``Name`` for this credential;
* ``{{ path.to.value }}`` is replaced by a value from the context (``trigger.payload.email``,
  ``steps.fetch.resource.name``), looked up by dictionary key and list index only;
* a value that is exactly one reference keeps the referenced value's type (a list stays a
  list), otherwise references are interpolated as text. Substituted values are never scanned
  again, so a webhook payload cannot smuggle in a placeholder;
* values are coerced to the declared types ("10" -> 10, "true" -> True) and validated against
  the action's input schema before any request is sent; every problem raises ``FilterError``
  naming the key and what is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from . import paths
from .errors import FilterError
from .spec import Action, Param

Rows = Iterable[Any] | Mapping[str, Any] | None
Resolver = Callable[[str, str], Any]  # (function name, key it appears in) -> value

_TOKEN = re.compile(r"~\{\s*([^{}~]*?)\s*\}~|\{\{\s*(.*?)\s*\}\}")
_INTEGER = re.compile(r"^[+-]?\d+$")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_UNSET = object()


# Rows -----------------------------------------------------------------------------------------
def normalise(filters: Rows) -> list[tuple[str, Any]]:
    """Rows as ``(key, value)`` pairs from pairs, ``{"key", "value"}`` dicts or a mapping."""
    if filters is None:
        return []
    if isinstance(filters, Mapping):
        return [(str(k), v) for k, v in filters.items()]
    rows = []
    for row in filters:
        if isinstance(row, Mapping) and "key" in row:
            rows.append((str(row["key"]), row.get("value")))
        elif isinstance(row, list | tuple) and len(row) == 2:
            rows.append((str(row[0]), row[1]))
        else:
            raise FilterError(
                f"Filter rows are (key, value) pairs; got {type(row).__name__} {str(row)[:60]!r}."
            )
    return rows


def split_key(key: str) -> tuple[str, bool, str | None]:
    """``"events[]"`` -> ("events", True, None); ``"query.a"`` -> ("query", False, "a")."""
    key = key.strip()
    name, dot, sub = key.partition(".")
    appends = False
    if dot and sub.endswith("[]"):
        sub, appends = sub[:-2], True
    elif not dot and name.endswith("[]"):
        name, appends = name[:-2], True
    return name, appends, (sub if dot else None)


def placeholders(value: Any) -> list[tuple[str, str]]:
    """``("function", name)`` and ``("path", path)`` references in a string value."""
    if not isinstance(value, str):
        return []
    found = []
    for match in _TOKEN.finditer(value):
        function, path = match.groups()
        found.append(("function", function) if function is not None else ("path", path))
    return found


# Substitution ---------------------------------------------------------------------------------
def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def substitute(
    value: Any, key: str, *, context: Mapping[str, Any] | None, resolve: Resolver
) -> Any:
    """``value`` with its placeholders and ``{{ }}`` references replaced (one pass)."""
    if not isinstance(value, str) or ("~{" not in value and "{{" not in value):
        return value

    def replacement(match: re.Match[str]) -> Any:
        function, path = match.groups()
        if function is not None:
            return resolve(function, key)
        return reference(path, key, context)

    matches = list(_TOKEN.finditer(value))
    if not matches:
        return value
    if len(matches) == 1 and matches[0].span() == (0, len(value)):
        return replacement(matches[0])
    return _TOKEN.sub(lambda m: _as_text(replacement(m)), value)


def reference(path: str, key: str, context: Mapping[str, Any] | None) -> Any:
    """The context value at ``path`` for a ``{{ path }}`` in ``key``."""
    try:
        return paths.lookup(context or {}, path)
    except ValueError as error:
        raise FilterError(
            f"{{{{ {path} }}}} in `{key}` is not a valid path: {error}.", key=key
        ) from None
    except paths.PathNotFound as error:
        raise FilterError(
            f"{{{{ {path} }}}} in `{key}`: {error}.", key=key, allowed=error.available
        ) from None


# Coercion -------------------------------------------------------------------------------------
def coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    """Text from a form row as the schema's type, where the conversion is unambiguous."""
    kind = schema.get("type")
    if kind == "array":
        items = value if isinstance(value, list | tuple) else [value]
        item_schema = schema.get("items") or {}
        return [coerce(item, item_schema) for item in items]
    if isinstance(value, str):
        text = value.strip()
        if kind == "integer" and _INTEGER.match(text):
            return int(text)
        if kind == "number":
            try:
                return int(text) if _INTEGER.match(text) else float(text)
            except ValueError:
                return value
        if kind == "boolean" and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        return value
    if kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Building the input ---------------------------------------------------------------------------
def _unknown_key(action: Action, key: str) -> FilterError:
    allowed = action.keys
    return FilterError(
        f"`{key}` is not a key of {action.name}; allowed keys: {', '.join(allowed) or 'none'}.",
        key=key,
        allowed=allowed,
    )


def _collect(
    action: Action, rows: list[tuple[str, Any]], value_of: Callable[[str, Any], Any]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in rows:
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            continue  # an empty row in an editor means "not given"
        name, appends, sub = split_key(key)
        param = action.params_by_name.get(name)
        if param is None or (sub is not None) != (param.type == "object"):
            raise _unknown_key(action, key)
        value = value_of(key, raw)
        if sub is not None:
            target = values.setdefault(name, {})
            if appends:
                _append(target, sub, value)
            elif sub in target:
                raise FilterError(
                    f"`{key}` is given twice; write `{key}[]` to build a list.", key=key
                )
            else:
                target[sub] = value
        elif appends:
            if param.type != "array":
                raise FilterError(
                    f"`{key}` builds a list but `{name}` takes a single value; write `{name}`.",
                    key=key,
                )
            _append(values, name, value)
        elif name in values:
            hint = f"write `{name}[]` on each row" if param.type == "array" else "give it once"
            raise FilterError(f"`{key}` is given twice; {hint}.", key=key)
        else:
            values[name] = value
    return values


def _append(target: dict[str, Any], name: str, value: Any) -> None:
    current = target.setdefault(name, [])
    if isinstance(value, list | tuple):
        current.extend(value)
    else:
        current.append(value)


def build_input(
    action: Action,
    filters: Rows,
    *,
    context: Mapping[str, Any] | None = None,
    resolve: Resolver,
    functions: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The action's input from filter rows: substituted, defaulted, coerced and validated.

    With ``functions`` (the connector's resource function names), rows that use references
    are first checked without resolving anything, so a mistake in a literal value is
    reported before a resource function costs a request.
    """
    rows = normalise(filters)
    if functions is not None and _uses_references(action, rows):
        problems = _static_problems(action, rows, functions, context)
        if problems:
            raise problems[0]

    def value_of(key: str, raw: Any) -> Any:
        return substitute(raw, key, context=context, resolve=resolve)

    values = _collect(action, rows, value_of)
    for param in _defaulted(action, values):
        values[param.name] = value_of(param.name, param.default)
    for name, value in values.items():
        values[name] = coerce(value, action.params_by_name[name].schema)
    problems = _problems(action, values)
    if problems:
        key, message, allowed = problems[0]
        text = " ".join(p[1] for p in problems)
        raise FilterError(text if len(problems) > 1 else message, key=key, allowed=allowed)
    return values


def check(action: Action, filters: Rows, functions: Iterable[str]) -> list[str]:
    """Problems with filter rows found without a credential or context (for editors):
    unknown keys, unknown placeholders, malformed references, missing required keys and
    literal values of the wrong type. An empty list means nothing is known to be wrong."""
    try:
        rows = normalise(filters)
    except FilterError as error:
        return [str(error)]
    return [str(problem) for problem in _static_problems(action, rows, functions)]


def _defaulted(action: Action, given: Iterable[str]) -> list[Param]:
    """Parameters whose default applies: not given, and none of their ``default_unless``."""
    present = set(given)
    return [
        p
        for p in action.params
        if p.default is not None
        and p.name not in present
        and not present.intersection(p.default_unless)
    ]


def _uses_references(action: Action, rows: list[tuple[str, Any]]) -> bool:
    if any(placeholders(value) for _, value in rows):
        return True
    return bool(_defaulted(action, {split_key(key)[0] for key, _ in rows}))


def _static_problems(
    action: Action,
    rows: list[tuple[str, Any]],
    functions: Iterable[str],
    context: Mapping[str, Any] | None = None,
) -> list[FilterError]:
    """Problems visible without resolving placeholders; ``{{ }}`` paths are looked up when
    the context is known (a run), only parsed when it is not (an editor)."""
    known = set(functions)
    problems: list[FilterError] = []
    dynamic: set[str] = set()

    def value_of(key: str, raw: Any) -> Any:
        refs = placeholders(raw)
        for kind, name in refs:
            if kind == "function" and name not in known:
                problems.append(unknown_function(name, key, known))
            elif kind == "path":
                try:
                    if context is None:
                        paths.parse(name)
                    else:
                        reference(name, key, context)
                except ValueError as error:
                    problems.append(
                        FilterError(
                            f"{{{{ {name} }}}} in `{key}` is not a valid path: {error}.", key=key
                        )
                    )
                except FilterError as error:
                    problems.append(error)
        if refs:
            dynamic.add(split_key(key)[0])
            return _UNSET
        return raw

    try:
        values = _collect(action, rows, value_of)
    except FilterError as error:
        return [*problems, error]
    for param in _defaulted(action, values):
        values[param.name] = value_of(param.name, param.default)
    literal = {}
    for name, value in values.items():
        if name in dynamic or value is _UNSET:
            literal[name] = _ANY_VALUE[action.params_by_name[name].type]
        else:
            literal[name] = coerce(value, action.params_by_name[name].schema)
    for key, message, allowed in _problems(action, literal):
        if key is None or split_key(key)[0] not in dynamic:
            problems.append(FilterError(message, key=key, allowed=allowed))
    return problems


# A stand-in that satisfies the type of a parameter whose value is only known at run time.
_ANY_VALUE: dict[str | None, Any] = {
    "string": "x",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
    None: "x",
}


def unknown_function(name: str, key: str, known: Iterable[str]) -> FilterError:
    """The error for a ``~{Name}~`` placeholder naming no resource function."""
    available = sorted(known)
    shown = ", ".join(f"~{{{n}}}~" for n in available) or "none"
    return FilterError(
        f"~{{{name}}}~ in `{key}` is not a resource function of this connector; "
        f"available: {shown}.",
        key=key,
        allowed=available,
    )


# Validation messages --------------------------------------------------------------------------
def _describe_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    return {
        "integer": "a whole number",
        "number": "a number",
        "boolean": "true or false",
        "string": "text",
        "array": "a list",
        "object": "an object",
    }.get(kind, str(kind))


def _problems(action: Action, values: dict[str, Any]) -> list[tuple[str | None, str, tuple]]:
    found: list[tuple[str | None, str, tuple]] = []
    errors = sorted(action.validator.iter_errors(values), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        path = list(error.absolute_path)
        param = action.params_by_name.get(str(path[0])) if path else None
        key = param.key if param is not None else None
        shown = error.instance
        if error.validator == "required":
            for name in error.validator_value:
                if name not in error.instance:
                    missing = action.params_by_name[name]
                    hint = f" ({missing.help})" if missing.help else ""
                    found.append(
                        (missing.key, f"{action.name} needs `{missing.key}`{hint}.", (missing.key,))
                    )
        elif error.validator == "anyOf" and not path:
            names = [s["required"][0] for s in error.validator_value]
            keys = tuple(action.params_by_name[n].key for n in names)
            found.append((keys[0], f"{action.name} needs one of: {', '.join(keys)}.", keys))
        elif error.validator == "enum":
            allowed = tuple(str(v) for v in error.validator_value)
            found.append(
                (key, f"`{key}` must be one of: {', '.join(allowed)}; got {shown!r}.", allowed)
            )
        elif error.validator == "type":
            found.append(
                (key, f"`{key}` must be {_describe_type(error.schema)}; got {shown!r}.", ())
            )
        elif error.validator == "format":
            found.append(
                (key, f"`{key}` must be a valid {error.validator_value}; got {shown!r}.", ())
            )
        elif error.validator == "uniqueItems":
            found.append((key, f"`{key}` lists a value twice.", ()))
        else:
            found.append((key, f"`{key}`: {error.message}.", ()))
    return found


# Rendering the request ------------------------------------------------------------------------
def path_segment(param: Param, value: Any) -> str:
    """A path parameter's value, checked and percent-encoded.

    A full URI is accepted for parameters with ``uri_collection`` (users copy URIs); empty
    values and values with ``/``, ``\\`` or ``..`` are refused so a value can never climb out
    of the path the action declares.
    """
    text = _as_text(value).strip()
    if param.uri_collection and text.lower().startswith(("http://", "https://")):
        segments = [unquote(s) for s in urlsplit(text).path.split("/") if s]
        if len(segments) < 2 or segments[-2] != param.uri_collection:
            raise FilterError(
                f"`{param.key}` must be a {param.uri_collection} URI (…/{param.uri_collection}/"
                f"<uuid>) or a UUID; got {text[:120]!r}.",
                key=param.key,
            )
        text = segments[-1]
    if param.style == "subpath":
        segments = text.strip("/").split("/") if text.strip("/") else []
        return "".join("/" + _checked_segment(param, s, text) for s in segments)
    return _checked_segment(param, text, text)


def _checked_segment(param: Param, segment: str, whole: str) -> str:
    if (
        not segment
        or segment in (".", "..")
        or "/" in segment
        or "\\" in segment
        or ".." in segment
    ):
        what = "empty" if not whole else f"{whole[:120]!r}"
        raise FilterError(
            f"`{param.key}` must be a single path segment without '/', '\\' or '..'; got {what}.",
            key=param.key,
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in segment) or segment[0] in "?#":
        raise FilterError(
            f"`{param.key}` contains characters not allowed in a path.", key=param.key
        )
    return quote(segment, safe="")


def _query_text(value: Any) -> str:
    return _as_text(value)


def render(action: Action, values: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]], Any]:
    """(path, query pairs, JSON body or None) for a validated input."""
    pieces = []
    for is_param, text in action.path_parts:
        pieces.append(path_segment(action.params_by_name[text], values[text]) if is_param else text)
    path = "".join(pieces)
    query: list[tuple[str, str]] = []
    body: dict[str, Any] | None = None
    for param in action.params:
        if param.name not in values:
            continue
        value = values[param.name]
        if param.location == "query":
            if isinstance(value, Mapping):
                for name, item in value.items():
                    _add_query(query, str(name), item)
            else:
                _add_query(query, param.name, value)
        elif param.location == "body":
            if body is None:
                body = {}
            body[param.name] = value
    return path, query, body


def _add_query(query: list[tuple[str, str]], name: str, value: Any) -> None:
    if isinstance(value, list | tuple):
        query.extend((name, _query_text(item)) for item in value)
    elif value is not None:
        query.append((name, _query_text(value)))
