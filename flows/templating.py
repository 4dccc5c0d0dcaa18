"""``{{ trigger.… }}`` and ``{{ steps.<name>.… }}`` in mappings and documents.

Safe path lookup only (dict keys and list indexes): no expressions, no attribute access,
nothing evaluated. A value that is exactly one reference keeps the referenced type (a whole
object or list); references inside longer text are substituted as text.
"""

from __future__ import annotations

import json
import re

from connectors import paths

# The same paths as in action filters (connectors.paths): a.b.0.c or a.b[0].c.
_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+|\[\d+\])*"
REFERENCE = re.compile(r"\{\{\s*(" + _PATH + r")\s*\}\}")
WHOLE = re.compile(r"^\s*\{\{\s*(" + _PATH + r")\s*\}\}\s*$")


class TemplateError(ValueError):
    """A reference names a path that the document does not have."""


def texts(value):
    """Every string inside ``value`` (nested dicts and lists included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def lookup(context: dict, path: str):
    """The value at a dotted path (dict keys, list indexes); TemplateError says where the
    path stops and what is there instead."""
    try:
        return paths.lookup(context, path)
    except (paths.PathNotFound, ValueError) as error:
        raise TemplateError(f"{{{{ {path} }}}}: {error}.") from None


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def render(value, context: dict):
    """Replace references in ``value`` (a string, or nested dicts and lists of them)."""
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if not isinstance(value, str):
        return value
    whole = WHOLE.match(value)
    if whole:
        return lookup(context, whole.group(1))
    return REFERENCE.sub(lambda m: _text(lookup(context, m.group(1))), value)
