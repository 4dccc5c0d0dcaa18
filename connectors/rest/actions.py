"""The generic REST connector's actions: JSON to and from a path under the base URL."""

from __future__ import annotations

from connectors.spec import Action, Param

_PATH = Param(
    "path",
    "path",
    {"type": "string"},
    default="",
    style="subpath",
    help="Path under the base URL, e.g. /v1/orders (no '..', no query string).",
)
_QUERY = Param(
    "query",
    "query",
    {
        "type": "object",
        "additionalProperties": {"type": ["string", "number", "boolean", "array", "null"]},
    },
    help="Query parameters, one query.<name> row each (query.<name>[] for repeats).",
)
_ANY = {"description": "The destination's answer: JSON, or text when it is not JSON."}


def _send(name: str, label: str, method: str, help: str, **options) -> Action:
    return Action(
        name=name,
        label=label,
        method=method,
        path="{path}",
        params=(_PATH, _QUERY),
        accepts_document=method in ("POST", "PUT", "PATCH"),
        output_schema=_ANY,
        help=help,
        **options,
    )


ACTIONS: tuple[Action, ...] = (
    _send(
        "post_json",
        "POST JSON",
        "POST",
        "POST the step's document as JSON. With the run's Idempotency-Key header a re-run "
        "does not forward twice where the destination honours it.",
    ),
    _send("put_json", "PUT JSON", "PUT", "PUT the step's document as JSON (replace)."),
    _send("patch_json", "PATCH JSON", "PATCH", "PATCH the step's document as JSON (update)."),
    _send("get_json", "GET JSON", "GET", "GET a path and return its JSON answer."),
    _send("delete", "DELETE", "DELETE", "DELETE a path."),
)
