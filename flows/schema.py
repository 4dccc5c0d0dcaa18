"""The processflow definition as a JSON Schema (draft 2020-12 subset that OpenAPI 3.1 and
3.0 tools read): what the API publishes for ``definition``. The checks in
``flows.definition`` remain the authority (they also know the installed applications,
their actions and the host's credentials); this tells clients the document's shape."""

from __future__ import annotations

from typing import Any

from .definition import MAX_STEPS, MIN_INTERVAL_SECONDS, REGISTRATIONS

_TEMPLATED = (
    "Text that may hold ~{ResourceFunction}~ placeholders and {{ trigger.… }} / "
    "{{ steps.<earlier step>.… }} references."
)
FILTERS: dict[str, Any] = {
    "type": "array",
    "description": "Action-filter rows: [key, value] pairs; repeat a key ending in [] for "
    "a list (events[]). " + _TEMPLATED,
    "items": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 2,
        "maxItems": 2,
    },
}
CREDENTIAL: dict[str, Any] = {
    "oneOf": [
        {
            "type": "integer",
            "description": "On the Cloud agent: the id of a stored credential of the "
            "organization, for this application.",
        },
        {
            "type": "string",
            "description": "On an on-premise agent group: the name of the credential of this "
            "application on the agents (e.g. main).",
        },
    ],
}


def _action(extra: dict | None = None) -> dict[str, Any]:
    properties = {
        "application": {"type": "string", "description": "A connector name, e.g. calendly."},
        "credential": CREDENTIAL,
        "action": {
            "type": "string",
            "description": "An action of the application (GET /applications/<name>/ lists "
            "them with their parameters).",
        },
        "filters": FILTERS,
        **(extra or {}),
    }
    return {
        "type": "object",
        "required": ["application", "credential", "action"],
        "properties": properties,
    }


def definition_schema() -> dict[str, Any]:
    """The JSON Schema of a processflow definition."""
    webhook = {
        "type": "object",
        "title": "Webhook trigger",
        "required": ["type", "application", "credential", "events"],
        "properties": {
            "type": {"type": "string", "enum": ["webhook"]},
            "application": {"type": "string"},
            "credential": CREDENTIAL,
            "events": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "options": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "The subscription options the application declares (Calendly: "
                "scope; GitHub: owner and repo; Figma: context and context_id): "
                "GET /api/v1/applications/<name>/ lists them.",
            },
            "scope": {
                "type": "string",
                "deprecated": True,
                "description": "Calendly's scope before options were declared; read as "
                "options.scope.",
            },
            "registration": {
                "type": "string",
                "enum": list(REGISTRATIONS),
                "default": "automatic",
                "description": "automatic: deploying subscribes the Processflow URL; manual: "
                "another processflow's Create Webhook Subscription step does.",
            },
        },
    }
    schedule = {
        "oneOf": [
            {
                "type": "object",
                "required": ["every_seconds"],
                "properties": {
                    "every_seconds": {"type": "integer", "minimum": MIN_INTERVAL_SECONDS}
                },
            },
            {
                "type": "object",
                "required": ["cron"],
                "properties": {
                    "cron": {"type": "string", "description": "minute hour day month weekday"}
                },
            },
            {
                "type": "object",
                "required": ["once"],
                "properties": {"once": {"type": "boolean", "enum": [True]}},
            },
        ]
    }
    polling = {
        "type": "object",
        "title": "Polling trigger",
        "required": ["type", "schedule"],
        "properties": {
            "type": {"type": "string", "enum": ["polling"]},
            "schedule": schedule,
            "source": {
                **_action(),
                "nullable": True,
                "description": "Each new record this action returns starts a run.",
            },
        },
    }
    name = {
        "type": "string",
        "pattern": "^[a-z][a-z0-9_]{0,39}$",
        "description": "Unique in the flow; later steps refer to it as steps.<name>.",
    }
    action_step = _action(
        {
            "name": name,
            "type": {"type": "string", "enum": ["action"], "default": "action"},
            "document": {"description": "The JSON body, for actions that take one. " + _TEMPLATED},
        }
    )
    action_step["title"] = "Action step"
    action_step["required"] = ["name", *action_step["required"]]
    map_step = {
        "type": "object",
        "title": "Map step",
        "required": ["name", "type", "mapping"],
        "properties": {
            "name": name,
            "type": {"type": "string", "enum": ["map"]},
            "mapping": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"description": _TEMPLATED},
                "description": "The fields of the document this step builds.",
            },
        },
    }
    return {
        "type": "object",
        "title": "ProcessflowDefinition",
        "required": ["trigger", "steps"],
        "properties": {
            "trigger": {"oneOf": [webhook, polling]},
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_STEPS,
                "items": {"oneOf": [action_step, map_step]},
            },
        },
    }
