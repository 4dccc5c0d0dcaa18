"""The processflow designer: the definition document (``flows.definition``) as a form whose
inputs come from the connectors' declarations, and back.

The designer holds a *draft*: a definition that need not be valid yet, plus the samples
the user has seen (the trigger's, each tested step's output). Every change (trigger type,
application, action, adding, removing or moving a step) posts the whole form; the server
turns it into a draft, applies the change and renders the designer again, so what is shown
is always what the connectors declare. Saving hands the draft's definition to the same
services the API uses; nothing here checks a definition (``flows.definition`` does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from flows.definition import MAX_STEPS, filled_by_host, trigger_options
from portal.agents import selectors as agent_selectors
from portal.applications import declarations
from portal.processflows.models import Processflow, TriggerEvent
from portal.processflows.registration import processflow_url
from portal.processflows.runs import trigger_document
from portal.tenancy.models import Organization
from portal.vault.models import Credential, CredentialStatus
from portal.vault.selectors import list_credentials

#: How deep sample documents are walked for the paths a mapping may pick.
PATH_DEPTH = 6
#: At most this many paths per sample (a long list of records offers its first items).
MAX_PATHS = 200
MAX_LIST_ITEMS = 2


@dataclass
class Draft:
    """What the designer shows: a definition being edited and the samples seen so far."""

    name: str = ""
    description: str = ""
    #: The on-premise agent group it is meant for (its id), or None for the Cloud agent.
    agent_group: int | None = None
    definition: dict = field(default_factory=dict)
    #: ``{"trigger": {...}, "steps": {"<name>": {...}}}``: data shown to pick paths from.
    samples: dict = field(default_factory=lambda: {"trigger": None, "steps": {}})

    @property
    def trigger(self) -> dict:
        return self.definition.setdefault("trigger", {"type": "webhook"})

    @property
    def steps(self) -> list[dict]:
        return self.definition.setdefault("steps", [])


def new_draft() -> Draft:
    return Draft(
        definition={
            "trigger": {"type": "webhook", "events": [], "options": {}},
            "steps": [],
        }
    )


def draft_of(flow: Processflow, definition: dict) -> Draft:
    """The draft of a saved flow, with its last received event as the trigger's sample."""
    draft = Draft(
        name=flow.name,
        description=flow.description,
        agent_group=flow.agent_group_id,
        definition=json.loads(json.dumps(definition)),
    )
    event = (
        TriggerEvent.objects.for_tenant(flow.organization)
        .filter(deployment__processflow=flow)
        .order_by("-received_at", "-pk")
        .first()
    )
    if event is not None:
        draft.samples["trigger"] = trigger_document(event)
        draft.samples["trigger_from"] = f"event #{event.pk}"
    return draft


# --- From the posted form ----------------------------------------------------------------------


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _json(value: str):
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def _action_choice(value: str) -> tuple[str, str]:
    application, _, action = (value or "").partition(":")
    return application, action


def _filter_rows(post: QueryDict, prefix: str, application: str, action: str) -> list[list[str]]:
    """Filter rows from the inputs generated for the action's declared parameters
    (``<prefix>-f-<key>``: repeated for list keys such as ``events[]``)."""
    rows: list[list[str]] = []
    try:
        spec = declarations.get_application(application).actions[action]
    except Exception:  # an application or action not chosen yet
        return rows
    for param in spec.params:
        for value in post.getlist(f"{prefix}-f-{param.key}"):
            for line in value.splitlines() if param.type == "array" else [value]:
                if line.strip():
                    rows.append([param.key, line.strip()])
    keys = post.getlist(f"{prefix}-xkey")
    values = post.getlist(f"{prefix}-xval")
    for key, value in zip(keys, values, strict=False):
        if key.strip():
            rows.append([key.strip(), value.strip()])
    return rows


def _agent_credential(value) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def draft_from_post(post: QueryDict) -> Draft:
    """The draft the designer's form describes (no checks: that is the definition's job)."""
    draft = Draft(
        name=post.get("name", ""),
        description=post.get("description", ""),
        agent_group=_int(post.get("agent_group")),
    )
    # On an agent group a credential is the name it has on the agents; on the Cloud agent,
    # the id of a stored credential.
    _credential = _agent_credential if draft.agent_group else _int
    kind = post.get("trigger_type") or "webhook"
    if kind == "polling":
        schedule_kind = post.get("schedule_kind") or "every"
        schedule = (
            {"once": True}
            if schedule_kind == "once"
            else {"cron": post.get("cron", "")}
            if schedule_kind == "cron"
            else {"every_seconds": _int(post.get("every_seconds")) or post.get("every_seconds")}
        )
        trigger: dict[str, Any] = {"type": "polling", "schedule": schedule, "source": None}
        application, action = _action_choice(post.get("src-action", ""))
        if action:
            trigger["source"] = {
                "application": application,
                "action": action,
                "credential": _credential(post.get("src-credential")),
                "filters": _filter_rows(post, "src", application, action),
            }
    else:
        credential = _credential(post.get("t-credential"))
        application = post.get("t-application") or ""
        trigger = {
            "type": "webhook",
            "application": application,
            "credential": credential,
            "events": post.getlist("t-events"),
            # The subscription options the application declares (a scope, an owner and a
            # repository...); an empty field means the declared default.
            "options": {
                key[len("t-option-") :]: value
                for key, value in post.items()
                if key.startswith("t-option-") and value not in (None, "")
            },
            "registration": post.get("t-registration") or "automatic",
        }
    draft.definition["trigger"] = trigger
    steps = []
    for index in range(_int(post.get("step-count")) or 0):
        prefix = f"step-{index}"
        name = post.get(f"{prefix}-name", "").strip()
        if post.get(f"{prefix}-type") == "map":
            mapping = {}
            for key, value in zip(
                post.getlist(f"{prefix}-mkey"), post.getlist(f"{prefix}-mval"), strict=False
            ):
                if key.strip():
                    mapping[key.strip()] = value
            steps.append({"name": name, "type": "map", "mapping": mapping})
            continue
        application = post.get(f"{prefix}-application", "")
        action = post.get(f"{prefix}-action", "")
        step = {
            "name": name,
            "type": "action",
            "application": application,
            "action": action,
            "credential": _credential(post.get(f"{prefix}-credential")),
            "filters": _filter_rows(post, prefix, application, action),
        }
        if post.get(f"{prefix}-document", "").strip():
            step["document"] = post[f"{prefix}-document"].strip()
        steps.append(step)
    draft.definition["steps"] = steps
    draft.samples["trigger"] = _json(post.get("sample-trigger", ""))
    draft.samples["trigger_from"] = post.get("sample-trigger-from", "")
    for step in steps:
        sample = _json(post.get(f"sample-step-{step['name']}", ""))
        if sample is not None:
            draft.samples["steps"][step["name"]] = sample
    return draft


def _step_name(draft: Draft, base: str) -> str:
    taken = {step.get("name") for step in draft.steps}
    number = len(draft.steps) + 1
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"


def apply(draft: Draft, op: str) -> str | None:
    """Apply a designer button (``add-action``, ``add-map``, ``remove-2``, ``up-1``,
    ``down-0``); returns the id of the element to focus next, if any."""
    steps = draft.steps
    verb, _, where = op.partition("-")
    index = _int(where)
    if op in ("add-action", "add-map") and len(steps) < MAX_STEPS:
        kind = op.removeprefix("add-")
        if kind == "map":
            steps.append({"name": _step_name(draft, "document"), "type": "map", "mapping": {}})
        else:
            steps.append(
                {"name": _step_name(draft, "step"), "type": "action", "application": "",
                 "action": "", "credential": None, "filters": []}
            )  # fmt: skip
        return f"step-{len(steps) - 1}-name"
    if index is None or not 0 <= index < len(steps):
        return None
    if verb == "remove":
        steps.pop(index)
        return "add-action" if not steps else f"step-{min(index, len(steps) - 1)}-name"
    if verb == "up" and index > 0:
        steps[index - 1], steps[index] = steps[index], steps[index - 1]
        return f"step-{index - 1}-up"
    if verb == "down" and index < len(steps) - 1:
        steps[index + 1], steps[index] = steps[index], steps[index + 1]
        return f"step-{index + 1}-down"
    return None


# --- What the template shows ---------------------------------------------------------------------


def sample_paths(root: str, value: Any, depth: int = 0) -> list[tuple[str, str]]:
    """``[(path, preview)]`` of the leaves of a sample, e.g.
    ``("trigger.payload.email", '"ada@example.com"')``."""
    found: list[tuple[str, str]] = []
    if depth >= PATH_DEPTH:
        return found
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and key.replace("_", "").replace("-", "").isalnum():
                found += sample_paths(f"{root}.{key}", item, depth + 1)
    elif isinstance(value, list) and value:
        for position, item in enumerate(value[:MAX_LIST_ITEMS]):
            found += sample_paths(f"{root}.{position}", item, depth + 1)
    elif not isinstance(value, list | Mapping):
        preview = json.dumps(value, ensure_ascii=False)
        found.append((root, preview if len(preview) <= 60 else preview[:57] + "…"))
    return found[:MAX_PATHS]


def _credential_options(credentials: list[Credential], application: str, chosen) -> list[dict]:
    """The application's credentials to pick from: invalid ones are shown but not offered,
    except one already chosen (so the draft says what it uses)."""
    options = []
    for credential in credentials:
        if credential.application != application:
            continue
        invalid = credential.status == CredentialStatus.INVALID
        if invalid and credential.pk != chosen:
            continue
        options.append(
            {
                "id": credential.pk,
                "label": credential.name + (" (invalid)" if invalid else ""),
                "selected": credential.pk == chosen,
                "status": credential.status,
            }
        )
    return options


def _agent_credential_options(group, application: str, chosen) -> list[dict]:
    """The names the group's agents report for the application (validity beside them)."""
    names: dict[str, bool] = {}
    for agent in agent_selectors.active_agents(group):
        for entry in agent.applications or []:
            if entry.get("application") == application:
                names[entry["name"]] = names.get(entry["name"], False) or bool(entry.get("valid"))
    return [
        {
            "id": name,
            "label": name if valid else f"{name} (not valid)",
            "selected": name == chosen,
            "status": "valid" if valid else "invalid",
        }
        for name, valid in sorted(names.items())
    ]


def _param_input(app, action: str, param, rows: list[list[str]], prefix: str) -> dict:
    values = [value for key, value in rows if key == param.key]
    schema = param.schema
    items = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
    enum = schema.get("enum") or (items.get("enum") if param.type == "array" else None)
    widget = "text"
    if enum:
        widget = "checkboxes" if param.type == "array" else "select"
    elif param.type == "array":
        widget = "lines"
    elif param.type in ("integer", "number"):
        widget = "number"
    return {
        "key": param.key,
        "id": f"{prefix}-f-{param.key}".replace("[]", "-list").replace(".", "-"),
        "name": f"{prefix}-f-{param.key}",
        "label": param.label,
        "help": param.help,
        "required": param.required and param.default is None,
        "default": param.default,
        "widget": widget,
        "choices": list(enum or []),
        "value": values[0] if values and widget != "lines" else "",
        "values": values,
        "text": "\n".join(values),
        "minimum": schema.get("minimum"),
        "maximum": schema.get("maximum"),
        "type": param.type or "string",
    }


def _action_form(app_name: str, action: str, rows: list[list[str]], prefix: str) -> dict:
    """The generated inputs of an action's declared parameters, and the rows that match
    none of them (shown as extra key/value rows)."""
    try:
        app = declarations.get_application(app_name)
        spec = app.actions[action]
    except Exception:
        return {"inputs": [], "extra": rows, "help": "", "accepts_document": False}
    hidden = filled_by_host(app, action)
    inputs = [
        _param_input(app, action, param, rows, prefix)
        for param in spec.params
        if param.key not in hidden
    ]
    declared = {param.key for param in spec.params}
    return {
        "inputs": inputs,
        "extra": [row for row in rows if row[0] not in declared],
        "help": spec.help,
        "accepts_document": spec.accepts_document,
        "method": spec.method,
        "path": spec.path,
    }


def _actions_of(application: str) -> list[tuple[str, str]]:
    try:
        app = declarations.get_application(application)
    except Exception:
        return []
    return [(name, action.label) for name, action in app.actions.items()]


def context(organization: Organization, draft: Draft, *, flow: Processflow | None = None) -> dict:
    """Everything the designer template needs to show ``draft``."""
    applications = declarations.all_applications()
    groups = list(agent_selectors.list_groups(organization))
    group = next((g for g in groups if g.pk == draft.agent_group), None)
    draft.agent_group = group.pk if group else None
    credentials = [] if group else list(list_credentials(organization).select_related(None))

    def credential_options(application: str, chosen) -> list[dict]:
        if group is not None:
            return _agent_credential_options(group, application, chosen)
        return _credential_options(credentials, application, chosen)

    trigger = draft.trigger
    webhook_apps = [app for app in applications if app.webhooks and app.webhooks.events]
    # A webhook trigger's application follows its credential when only that was chosen.
    if trigger.get("type") == "webhook" and not trigger.get("application"):
        chosen = next((c for c in credentials if c.pk == trigger.get("credential")), None)
        trigger["application"] = (
            chosen.application if chosen else (webhook_apps[0].name if webhook_apps else "")
        )
    webhook_app = trigger.get("application") or ""
    try:
        webhook = declarations.get_application(webhook_app).webhooks
    except Exception:
        webhook = None
    available_events = list(webhook.events) if webhook else []
    chosen_options = trigger_options(trigger) if trigger.get("type") == "webhook" else {}
    options = [
        {"option": option, "value": chosen_options.get(option.name, option.default or "")}
        for option in (webhook.options if webhook else ())
    ]
    source = trigger.get("source") or {}
    samples = draft.samples
    paths: list[tuple[str, str]] = []
    if samples.get("trigger") is not None:
        paths += sample_paths("trigger", samples["trigger"])
    steps = []
    for index, step in enumerate(draft.steps):
        prefix = f"step-{index}"
        available = list(paths)
        if step.get("type") == "map":
            rows = [*list((step.get("mapping") or {}).items()), ("", "")]
            form = {"rows": rows}
        else:
            form = _action_form(
                step.get("application", ""), step.get("action", ""), step.get("filters", []),
                prefix,
            )  # fmt: skip
        sample = samples["steps"].get(step.get("name"))
        steps.append(
            {
                "index": index,
                "prefix": prefix,
                "step": step,
                "form": form,
                "actions": _actions_of(step.get("application", "")),
                "credentials": credential_options(
                    step.get("application", ""), step.get("credential")
                ),
                "credential_field": f"{prefix}-credential",
                "no_application": not step.get("application"),
                "paths": available,
                "sample": sample,
                "sample_json": json.dumps(sample) if sample is not None else "",
                "first": index == 0,
                "last": index == len(draft.steps) - 1,
            }
        )
        if sample is not None and step.get("name"):
            paths += sample_paths(f"steps.{step['name']}", sample)
    other_flows = [
        (f.name, processflow_url(f))
        for f in Processflow.objects.for_tenant(organization).filter(trigger_type="webhook")
        if flow is None or f.pk != flow.pk
    ]
    return {
        "draft": draft,
        "trigger": trigger,
        "applications": [(app.name, app.display_name) for app in applications],
        "webhook_applications": [(app.name, app.display_name) for app in webhook_apps],
        "webhook_credentials": credential_options(webhook_app, trigger.get("credential")),
        "agent_groups": groups,
        "agent_group": group,
        "available_events": available_events,
        "subscription_options": options,
        "event_notes": dict(webhook.notes) if webhook else {},
        "source": source,
        "source_actions": [
            (f"{app.name}:{name}", f"{app.display_name} › {action.label}")
            for app in applications
            for name, action in app.actions.items()
            if action.method == "GET"
        ],
        "source_form": _action_form(
            source.get("application", ""),
            source.get("action", ""),
            source.get("filters", []),
            "src",
        ),
        "source_credentials": credential_options(
            source.get("application", ""), source.get("credential")
        ),
        "schedule": trigger.get("schedule") or {"every_seconds": 300},
        "steps": steps,
        "max_steps": MAX_STEPS,
        "sample_trigger_json": (
            json.dumps(samples["trigger"]) if samples.get("trigger") is not None else ""
        ),
        "trigger_paths": sample_paths("trigger", samples.get("trigger") or {}),
        "resource_functions": [
            (app.display_name, name, app.resource_functions[name].label)
            for app in applications
            for name in app.resource_functions
        ],
        "flow_urls": other_flows,
        "definition_json": json.dumps(draft.definition, indent=2),
    }


# --- Samples on demand ---------------------------------------------------------------------


def declared_example(application: str, events: list[str]) -> dict | None:
    """The connector's documented example delivery for the first of ``events``."""
    try:
        webhook = declarations.get_application(application).webhooks
    except Exception:
        return None
    if webhook is None:
        return None
    examples = webhook.event_examples
    for event in events or list(webhook.events):
        if event in examples:
            return json.loads(json.dumps(examples[event]))
    return None


def definition_from_import(text: str) -> dict:
    """A definition pasted or uploaded as JSON (the document the API takes); ValueError
    saying what is wrong with it."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"That is not JSON: {error}.") from None
    if isinstance(document, dict) and "definition" in document and "trigger" not in document:
        document = document["definition"]  # a whole processflow, as the API returns it
    if not isinstance(document, dict) or not isinstance(document.get("trigger"), dict):
        raise ValueError("A definition is an object with a trigger and steps.")
    if not isinstance(document.get("steps", []), list):
        raise ValueError("steps is a list.")
    return document
