"""Query-parameter checks that collect every problem before answering 400.

Calendly reports all invalid parameters at once in ``details``; a client author fixing one
parameter at a time would otherwise meet them one request at a time. Each accessor records a
problem and returns ``None`` rather than raising; ``raise_if_invalid`` ends the check.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from .errors import invalid

MIN_COUNT, MAX_COUNT, DEFAULT_COUNT = 1, 100, 20
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UUID = r"([A-Za-z0-9_-]+)"


def parse_uri(value: str, collection: str) -> str | None:
    """The UUID in ``<scheme>://<host>/<collection>/<uuid>``, or None if it is not such a URI.

    The host is not compared: clients may hold URIs minted under another host (e.g. a sandbox
    restarted on a new port, or api.calendly.com in fixtures) and Calendly keys on the UUID.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    match = re.fullmatch(rf"/{collection}/{_UUID}", parts.path)
    return match.group(1) if match else None


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class QueryParams:
    """Typed access to one request's query string, collecting 400 details."""

    def __init__(self, query: dict[str, list[str]]) -> None:
        self.query = query
        self.details: list[dict[str, str]] = []

    def problem(self, parameter: str, message: str) -> None:
        self.details.append({"parameter": parameter, "message": message})

    def raw(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def present(self, name: str) -> bool:
        value = self.raw(name)
        return value is not None and value != ""

    def uri(self, name: str, collection: str, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                self.problem(name, "is required")
            return None
        uuid = parse_uri(value, collection)
        if uuid is None:
            self.problem(name, f"must be a valid {collection.rstrip('s')} URI")
        return uuid

    def choice(self, name: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                self.problem(name, "is required")
            return None
        if value not in allowed:
            self.problem(name, f"must be one of {', '.join(allowed)}")
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(name, "must be true or false")
        return None

    def email(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        if not _EMAIL.match(value):
            self.problem(name, "must be a valid email address")
            return None
        return value

    def time(self, name: str) -> datetime | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        moment = parse_time(value)
        if moment is None:
            self.problem(name, "must be an ISO 8601 timestamp, e.g. 2020-01-02T03:04:05.678123Z")
        return moment

    def count(self) -> int:
        value = self.raw("count")
        if value is None or value == "":
            return DEFAULT_COUNT
        try:
            count = int(value)
        except ValueError:
            self.problem("count", "must be an integer")
            return DEFAULT_COUNT
        if not MIN_COUNT <= count <= MAX_COUNT:
            self.problem("count", f"must be between {MIN_COUNT} and {MAX_COUNT}")
            return DEFAULT_COUNT
        return count

    def sort(self, name: str, fields: tuple[str, ...], default: str) -> list[tuple[str, bool]]:
        """``field:dir[,field:dir...]`` as (field, descending) pairs; direction defaults to asc."""
        value = self.raw(name) or default
        keys = []
        for part in value.split(","):
            field, _, direction = part.strip().partition(":")
            direction = direction or "asc"
            if field not in fields or direction not in ("asc", "desc"):
                allowed = ", ".join(f"{f}:asc, {f}:desc" for f in fields)
                self.problem(name, f"must be a comma-separated list of {allowed}")
                return [(default.partition(":")[0], default.endswith(":desc"))]
            keys.append((field, direction == "desc"))
        return keys

    def raise_if_invalid(self) -> None:
        if self.details:
            raise invalid(self.details)
