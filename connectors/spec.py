"""Declarations: what a connector is made of, as frozen dataclasses.

A connector is data first: credential types with their fields, actions with their parameters,
resource functions, pagination. Everything derivable (the input JSON Schema and its validator,
the compiled path template, the lookup tables) is computed once when the declaration is built,
so running an action does no schema work beyond validating its input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

from . import paths
from .errors import InvalidCredentials
from .pagination import CursorPagination as CursorPagination  # re-exported
from .pagination import Pagination
from .secrets import Credentials

Location = Literal["path", "query", "body"]
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_TEMPLATE_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# jsonschema checks formats only when told to, and "uri"/"date-time" need optional packages;
# these are the checks every "format" used by our schemas means here.
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value or " " in value


@FORMAT_CHECKER.checks("email")
def _is_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and " " not in value)


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


# Credentials ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One input of a credential form. The portal renders forms from these; secret fields are
    stored encrypted and reach the connector as ``Secret`` values."""

    name: str
    label: str
    help_text: str = ""
    secret: bool = False
    required: bool = True
    max_length: int = 4096
    default: str | None = None
    choices: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "help_text": self.help_text,
            "secret": self.secret,
            "required": self.required,
            "max_length": self.max_length,
            "default": self.default,
            "choices": list(self.choices),
        }


class Auth(Protocol):
    """How a credential becomes request headers (see ``connectors.auth``)."""

    kind: str

    def headers(self, credentials: Credentials) -> dict[str, str]: ...

    def secret_values(self, credentials: Credentials) -> list[str]: ...


@dataclass(frozen=True)
class CredentialType:
    """A way to authenticate with the application (Calendly: ``rest``, a Personal Access
    Token). ``auth`` turns a credential of this type into request headers."""

    name: str
    label: str
    fields: tuple[Field, ...]
    auth: Auth
    help_text: str = ""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def check(self, credentials: Credentials, display_name: str) -> None:
        """Raise ``InvalidCredentials`` naming every required field that is missing."""
        missing = []
        for spec in self.fields:
            if not spec.required:
                continue
            present = (
                credentials.secret(spec.name) if spec.secret else credentials.fields.get(spec.name)
            )
            if not present and spec.default is None:
                missing.append(spec.label)
        if missing:
            raise InvalidCredentials(
                f"The {display_name} {self.label} credential has no {', '.join(missing)}; "
                "add it and validate again."
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "help_text": self.help_text,
            "auth": self.auth.kind,
            "fields": [f.as_dict() for f in self.fields],
        }


# Actions --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One key an action takes, where it goes (``path``, ``query`` or ``body``) and its JSON
    Schema. Array parameters are built from repeated ``key[]`` filter rows; object parameters
    from ``key.sub`` rows.

    ``uri_collection`` (path parameters): a full resource URI such as
    ``https://api.calendly.com/scheduled_events/ABC`` is accepted and its last segment used,
    provided the segment before it is this collection. ``style="subpath"`` lets a path
    parameter hold several segments (``/v1/orders``), each still checked and encoded.
    ``default`` may contain placeholders (``~{GetOrganizationUrl}~``) and applies only when
    none of the keys in ``default_unless`` is given either (Calendly: ``user`` defaults to the
    token's user unless ``organization`` is given). ``secret`` values are masked in request
    summaries and scrubbed from error messages.
    """

    name: str
    location: Location
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    label: str = ""
    help: str = ""
    default: Any = None
    default_unless: tuple[str, ...] = ()
    secret: bool = False
    uri_collection: str | None = None
    style: Literal["segment", "subpath"] = "segment"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"parameter name {self.name!r} must be an identifier")
        if self.location not in ("path", "query", "body"):
            raise ValueError(f"{self.name}: location must be path, query or body")
        object.__setattr__(self, "schema", _frozen(self.schema))
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())

    @property
    def type(self) -> str | None:
        kind = self.schema.get("type")
        return kind if isinstance(kind, str) else None

    @property
    def key(self) -> str:
        """How a filter row names it: ``events[]`` for arrays, ``query.<name>`` for objects."""
        if self.type == "array":
            return f"{self.name}[]"
        if self.type == "object":
            return f"{self.name}.<name>"
        return self.name

    def json_schema(self) -> dict[str, Any]:
        schema = dict(self.schema)
        schema.setdefault("title", self.label)
        if self.help:
            schema.setdefault("description", self.help)
        if self.default is not None:
            schema.setdefault("default", self.default)
        schema["x-location"] = self.location
        return schema


@dataclass(frozen=True)
class Action:
    """A pre-packaged API call: ``method`` on ``path`` (``{name}`` marks path parameters) with
    the declared ``params``. ``output_schema`` describes the answer for the portal's mapping
    editor. ``requires_any`` lists groups of which at least one key must be given (Calendly's
    ``user`` or ``organization``). ``accepts_document``: the caller's ``document`` becomes the
    JSON body. ``idempotent`` (default: by method) allows retrying after a 5xx or a broken
    connection."""

    name: str
    label: str
    method: str
    path: str
    params: tuple[Param, ...] = ()
    output_schema: Mapping[str, Any] = field(default_factory=dict)
    help: str = ""
    pagination: Pagination | None = None
    requires_any: tuple[tuple[str, ...], ...] = ()
    accepts_document: bool = False
    idempotent: bool | None = None

    # Derived once, at declaration time.
    params_by_name: Mapping[str, Param] = field(init=False, repr=False, compare=False)
    input_schema: Mapping[str, Any] = field(init=False, repr=False, compare=False)
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)
    path_parts: tuple[tuple[bool, str], ...] = field(init=False, repr=False, compare=False)
    logged_query: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        method = self.method.upper()
        if method not in _METHODS:
            raise ValueError(f"{self.name}: unsupported method {self.method!r}")
        set_(self, "method", method)
        set_(self, "params", tuple(self.params))
        set_(self, "output_schema", _frozen(self.output_schema))
        by_name = {p.name: p for p in self.params}
        if len(by_name) != len(self.params):
            raise ValueError(f"{self.name}: duplicate parameter names")
        set_(self, "params_by_name", MappingProxyType(by_name))
        if self.idempotent is None:
            set_(self, "idempotent", method in _IDEMPOTENT)

        in_template = _TEMPLATE_PARAM.findall(self.path)
        declared_path = [p.name for p in self.params if p.location == "path"]
        if sorted(in_template) != sorted(declared_path):
            raise ValueError(
                f"{self.name}: path {self.path!r} and path parameters {declared_path} differ"
            )
        parts: list[tuple[bool, str]] = []
        position = 0
        for match in _TEMPLATE_PARAM.finditer(self.path):
            parts.append((False, self.path[position : match.start()]))
            parts.append((True, match.group(1)))
            position = match.end()
        parts.append((False, self.path[position:]))
        set_(self, "path_parts", tuple(p for p in parts if p[1] or p[0]))

        for param in self.params:
            unknown = set(param.default_unless) - set(by_name)
            if unknown:
                raise ValueError(
                    f"{self.name}.{param.name}: default_unless names {sorted(unknown)}"
                )
        for group in self.requires_any:
            unknown = set(group) - set(by_name)
            if unknown:
                raise ValueError(f"{self.name}: requires_any names unknown {sorted(unknown)}")
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.params},
            "required": [p.name for p in self.params if p.required],
            "additionalProperties": False,
        }
        if self.requires_any:
            schema["allOf"] = [
                {"anyOf": [{"required": [name]} for name in group]} for group in self.requires_any
            ]
        Draft202012Validator.check_schema(schema)
        set_(self, "input_schema", MappingProxyType(schema))
        set_(self, "validator", Draft202012Validator(schema, format_checker=FORMAT_CHECKER))
        logged = {p.name for p in self.params if p.location == "query" and not p.secret}
        if self.pagination is not None:
            logged |= self.pagination.controlled
            logged |= {self.pagination.size_param} - {None}
        set_(self, "logged_query", frozenset(logged))

    @property
    def paginated(self) -> bool:
        return self.pagination is not None

    @property
    def keys(self) -> list[str]:
        """The filter keys this action accepts, as a user writes them."""
        return [p.key for p in self.params]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "method": self.method,
            "path": self.path,
            "help": self.help,
            "keys": self.keys,
            "params": [
                {
                    "name": p.name,
                    "key": p.key,
                    "location": p.location,
                    "label": p.label,
                    "help": p.help,
                    "required": p.required,
                    "default": p.default,
                    "default_unless": list(p.default_unless),
                    "secret": p.secret,
                    "schema": dict(p.schema),
                }
                for p in self.params
            ],
            "requires_any": [list(group) for group in self.requires_any],
            "input_schema": _plain(self.input_schema),
            "output_schema": _plain(self.output_schema),
            "pagination": self.pagination.as_dict() if self.pagination else None,
            "accepts_document": self.accepts_document,
            "idempotent": self.idempotent,
        }


@dataclass(frozen=True)
class ResourceFunction:
    """A named per-credential lookup used in filter values as ``~{Name}~``: runs ``action``
    (with ``filters``) and takes the value at ``path`` in its answer. Results are cached per
    credential for the Runtime's ``cache_ttl``."""

    name: str
    action: str
    path: str
    label: str = ""
    help: str = ""
    filters: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"resource function name {self.name!r} must be an identifier")
        paths.parse(self.path)

    @property
    def placeholder(self) -> str:
        return f"~{{{self.name}}}~"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "placeholder": self.placeholder,
            "label": self.label or self.name,
            "help": self.help,
            "action": self.action,
        }


def _plain(value: Any) -> Any:
    """Mapping proxies and tuples as plain JSON data."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
