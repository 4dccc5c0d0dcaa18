"""Log lines that say which request, event and run they are about, across processes.

A webhook delivery is received by a web process, published by the relay and run by a worker:
three processes, often three machines. The ids that tie their log lines together travel with
the work:

- the web request's id comes from its ``X-Request-ID`` header when that is a sane id, is made
  up otherwise, and is returned in the response's ``X-Request-ID``. The middleware also puts
  it back into the request as that header, so intake stores it with the event it accepts;
- ids are kept in context variables while a request or a task is handled; a log filter adds
  them to every record (``request_id``, ``event_id``, ``run_id``);
- publishing a Celery task copies the ids bound at that moment into the message's headers
  (``portal_request_id``...), and the worker binds them again while the task runs. The relay
  binds each event's id and stored request id while it publishes it; publishing a run binds
  the run's id.

With ``LOG_FORMAT=json`` each line is one JSON object: ``time``, ``level``, ``logger``,
``message``, the ids that are known, and ``exc_info`` for a traceback. What is logged is what
the code logs: ids only, never a header's or a body's content.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token

from celery import signals
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FIELDS = ("request_id", "event_id", "run_id")
HEADER_PREFIX = "portal_"
_VARS: dict[str, ContextVar] = {name: ContextVar(name, default=None) for name in FIELDS}
# What a client may choose as its request id: short, printable, nothing a log reader or a
# header could misread.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


def current() -> dict[str, object]:
    """The ids bound now (only those that are set)."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


def bind(**ids) -> list[Token]:
    """Bind the ids given (None values are skipped); returns what :func:`unbind` takes."""
    return [_VARS[name].set(value) for name, value in ids.items() if value is not None]


def unbind(tokens: list[Token]) -> None:
    """Restore what :func:`bind` replaced."""
    for token in reversed(tokens):
        with contextlib.suppress(ValueError):  # bound in another context: nothing to restore
            token.var.reset(token)


@contextlib.contextmanager
def bound(**ids) -> Iterator[None]:
    """Bind ``ids`` (``request_id``, ``event_id``, ``run_id``) for the ``with`` block."""
    tokens = bind(**ids)
    try:
        yield
    finally:
        unbind(tokens)


def request_id_from(value: str | None) -> str:
    """``value`` when it is a sane request id, otherwise a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


# --- Logging ---------------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Adds the bound ids to each record (an id given in ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class PlainFormatter(logging.Formatter):
    """Text for people, with the known ids after the logger's name."""

    def __init__(self, fmt=None, datefmt=None, style="%", **kwargs):
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s%(ids)s %(message)s",
                         datefmt, style, **kwargs)  # fmt: skip

    def formatMessage(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)
        )
        record.ids = f" [{ids}]" if ids else ""
        return super().formatMessage(record)


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the ids."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)


# --- Requests ----------------------------------------------------------------------------------


class RequestIdMiddleware:
    """Gives every request an id (``X-Request-ID`` when sane, else a new one), binds it for
    the request's log lines and returns it in the response's ``X-Request-ID``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        # Whoever reads the request's headers (intake stores X-Request-ID with an event)
        # reads the id this request is logged under.
        request.META["HTTP_X_REQUEST_ID"] = request_id
        tokens = bind(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            unbind(tokens)
        response["X-Request-ID"] = request_id
        return response


# --- Celery tasks ------------------------------------------------------------------------------

_task_tokens: dict[str, list[Token]] = {}


@signals.before_task_publish.connect
def _ids_into_headers(headers=None, **kwargs) -> None:
    if headers is not None:
        for name, value in current().items():
            headers[HEADER_PREFIX + name] = value


@signals.task_prerun.connect
def _ids_from_headers(task_id=None, task=None, **kwargs) -> None:
    request = getattr(task, "request", None)
    ids = {name: getattr(request, HEADER_PREFIX + name, None) for name in FIELDS}
    _task_tokens[task_id] = bind(**ids)


@signals.task_postrun.connect
def _ids_released(task_id=None, **kwargs) -> None:
    unbind(_task_tokens.pop(task_id, []))
