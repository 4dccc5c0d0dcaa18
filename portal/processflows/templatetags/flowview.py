"""Showing run and event data: JSON trees with folding (no JavaScript: nested <details>),
and a step's request line with its (already redacted) query string."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

#: Levels below this depth start folded; a long list or object also starts folded.
OPEN_DEPTH = 2
OPEN_MAX_ITEMS = 12


def _scalar(value) -> SafeString:
    kind = "null" if value is None else type(value).__name__
    return format_html('<span class="j-{}">{}</span>', kind, json.dumps(value, ensure_ascii=False))


def _node(value, depth: int, path: str) -> SafeString:
    if isinstance(value, dict):
        items = list(value.items())
        opening, closing = "{", "}"
    elif isinstance(value, list):
        items = list(enumerate(value))
        opening, closing = "[", "]"
    else:
        return _scalar(value)
    if not items:
        return format_html('<span class="j-empty">{}{}</span>', opening, closing)
    rows = format_html_join(
        "",
        '<li><span class="j-key">{}</span>{}</li>',
        (
            (
                format_html("{}: ", json.dumps(key, ensure_ascii=False))
                if isinstance(value, dict)
                else "",
                _node(item, depth + 1, f"{path}.{key}"),
            )
            for key, item in items
        ),
    )
    opened = " open" if depth < OPEN_DEPTH and len(items) <= OPEN_MAX_ITEMS else ""
    noun = "key" if isinstance(value, dict) else "item"
    count = f"{len(items)} {noun}{'s' if len(items) != 1 else ''}"
    return format_html(
        '<details class="j-node"{}><summary>{}<span class="j-count">{}</span></summary>'
        '<ul class="j-items">{}</ul>{}</details>',
        mark_safe(opened),  # noqa: S308 (a constant)
        opening,
        count,
        rows,
        closing,
    )


@register.filter
def json_tree(value) -> SafeString:
    """``value`` (parsed JSON, or JSON text) as a foldable tree; text that is not JSON is
    shown as it is."""
    if isinstance(value, bytes | memoryview):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html('<pre class="json">{}</pre>', value)
    return format_html('<div class="json-tree">{}</div>', _node(value, 0, "$"))


@register.filter
def request_line(request: dict) -> str:
    """``GET https://…/scheduled_events?count=20&status=active`` from a step's request
    summary (secret and undeclared query values are masked when recorded)."""
    if not isinstance(request, dict) or not request.get("method"):
        return ""
    query = request.get("query") or []
    line = f"{request['method']} {request.get('url', '')}"
    if query:
        line += "?" + urlencode([tuple(pair) for pair in query], safe="[]*•:/")
    return line


@register.filter
def unfinished(runs) -> bool:
    """Whether any of ``runs`` may still change (so its table refreshes itself)."""
    return any(run.status in ("queued", "running", "retrying") for run in runs)


@register.filter
def get_item(mapping, key):
    """``mapping[key]`` in a template (None when absent)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def sample_paths(sample, step_name: str) -> list[tuple[str, str]]:
    """The paths of a step's sample output, as ``steps.<name>.…``."""
    from portal.processflows.designer import sample_paths as paths

    return paths(f"steps.{step_name}", sample)


@register.filter
def after_step(path: str, step_name: str) -> str:
    """``steps.me.resource.email`` -> ``resource.email`` (the heading names the step)."""
    return path.removeprefix(f"steps.{step_name}.")


@register.filter
def ran_on(run) -> str:
    """Where a run ran: the on-premise agent's name, or "Cloud agent"."""
    if run.agent_id is not None:
        return f"agent {run.agent.name}"
    return "Cloud agent"


@register.filter
def waiting_for(run) -> str:
    """ "Waiting for agent group X, offline since …" for a waiting run whose group has no
    agent online; "" otherwise."""
    from portal.processflows.selectors import waiting_for_agents

    return waiting_for_agents(run)
