"""Safe lookups of ``a.b.0.c`` (or ``a.b[0].c``) paths in JSON-like data.

Only dictionary keys and list indexes are followed: no attribute access, no calls, no
evaluation, so a path written by a user (``{{ trigger.payload.email }}``) or declared by a
connector (``resource.current_organization``) can read data and nothing else.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PART = re.compile(r"([^.\[\]\s]+)|\[(\d+)\]")


class PathNotFound(LookupError):
    """Nothing at ``path``; ``at`` is the prefix that exists, ``available`` what it offers."""

    def __init__(self, path: str, at: str, available: Sequence[str]) -> None:
        self.path, self.at, self.available = path, at, tuple(available)
        where = f"under {at!r}" if at else "at the top level"
        offer = f"; available there: {', '.join(available[:20])}" if available else ""
        super().__init__(f"nothing at {path!r} (stopped {where}{offer})")


@functools.lru_cache(maxsize=1024)
def parse(path: str) -> tuple[str | int, ...]:
    """``"a.b[0].c"`` -> ``("a", "b", 0, "c")``; digits between dots are indexes too."""
    text = path.strip()
    if not text:
        raise ValueError("an empty path")
    parts: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ValueError(f"{path!r} is not a path like a.b.0.c")
        name, index = match.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(int(name) if name.isdigit() else name)
        position = match.end()
        if position < len(text):
            if text[position] == ".":
                position += 1
                if position == len(text):
                    raise ValueError(f"{path!r} ends with a dot")
            elif text[position] != "[":
                raise ValueError(f"{path!r} is not a path like a.b.0.c")
    return tuple(parts)


def lookup(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data``; ``PathNotFound`` when a step is missing."""
    current = data
    walked: list[str] = []
    for part in parse(path):
        if isinstance(current, Mapping):
            key = str(part)
            if key not in current:
                raise PathNotFound(path, ".".join(walked), [str(k) for k in current])
            current = current[key]
        elif isinstance(current, Sequence) and not isinstance(current, str | bytes):
            if not isinstance(part, int) or part >= len(current):
                size = len(current)
                raise PathNotFound(path, ".".join(walked), [f"0..{size - 1}"] if size else [])
            current = current[part]
        else:
            raise PathNotFound(path, ".".join(walked), [])
        walked.append(str(part))
    return current


def get(data: Any, path: str, default: Any = None) -> Any:
    """Like ``lookup`` but returns ``default`` instead of raising."""
    try:
        return lookup(data, path)
    except PathNotFound:
        return default
