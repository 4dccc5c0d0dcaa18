"""Checking polling schedules: five-field cron expressions, without a scheduler at hand.

The portal schedules with Celery beat, whose parser accepts numbers, names (``mon``, ``jan``),
``*``, ranges, steps and lists. The same rules are checked here, in plain Python, so a
definition is judged the same wherever it is checked (the portal's editor, its API, an agent).
"""

from __future__ import annotations

import re

FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# (smallest, largest) value of each field.
_BOUNDS = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day_of_month": (1, 31),
    "month_of_year": (1, 12),
    "day_of_week": (0, 6),
}
_WEEKDAYS = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_TEXT = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_PART = re.compile(r"^(?:(\*)|(\w+?)(?:-(\w+))?)(?:/(\w*))?$")


class CronError(ValueError):
    """One field of a cron expression is not valid; the message says why."""


def _number(text: str, field: str) -> int:
    low, high = _BOUNDS[field]
    if text.isdigit():
        value = int(text)
    else:
        names = _MONTHS if field == "month_of_year" else _WEEKDAYS
        value = names.get(text[:3].lower(), -1) if len(text) >= 3 else -1
        if value < 0:
            raise CronError(f"Unknown name {text!r}.")
    if value > high:
        raise CronError(f"Invalid end range: {value} > {high}.")
    if value < low:
        raise CronError(f"Invalid beginning range: {value} < {low}.")
    return value


def check_field(field: str, value: str) -> None:
    """Raise :class:`CronError` unless ``value`` is a valid cron ``field`` (e.g. ``*/5``)."""
    if not _TEXT.match(value):
        raise CronError("")
    for part in value.split(","):
        if not part:
            raise CronError("An empty part between commas.")
        match = _PART.match(part)
        if match is None:
            raise CronError(f"{part!r} is not a number, a name, a range or a step.")
        star, start, end, step = match.groups()
        if not star:
            _number(start, field)
            if end is not None:
                _number(end, field)
        if step is not None and (not step.isdigit() or int(step) == 0):
            raise CronError(f"A step is a whole number above zero, not {step!r}.")


def check_cron(expression: object) -> str:
    """The expression normalised to single spaces; :class:`CronError` naming the bad field."""
    fields = str(expression or "").split()
    if len(fields) != len(FIELDS):
        raise CronError("A cron expression has five fields: minute hour day month weekday.")
    for name, value in zip(FIELDS, fields, strict=True):
        label = name.replace("_", " ")
        try:
            check_field(name, value)
        except CronError as error:
            reason = str(error)
            raise CronError(
                f"The {label} field {value!r} is not valid" + (f": {reason}" if reason else ".")
            ) from None
    return " ".join(fields)
