"""Processflow definitions: what a version holds, and the checks that make a bad definition
a clear error when it is saved instead of a failed run later.

A definition is JSON::

    {
      "trigger": {"type": "webhook", "application": "calendly", "credential": 3,
                  "events": ["invitee.created"], "scope": "organization"}
              or {"type": "polling", "schedule": {"every_seconds": 300} | {"cron": "*/5 * * * *"}
                                                | {"once": true},
                  "source": null | {"application": "calendly", "credential": 3,
                                    "action": "scheduled_events", "filters": [["count", "20"]]}},
      "steps": [
        {"name": "event", "type": "action", "application": "calendly", "credential": 3,
         "action": "scheduled_event", "filters": [["uuid", "{{ trigger.payload.event }}"]]},
        {"name": "document", "type": "map",
         "mapping": {"email": "{{ trigger.payload.email }}",
                     "title": "{{ steps.event.resource.name }}"}},
        {"name": "forward", "type": "action", "application": "rest", "credential": 5,
         "action": "post_json", "filters": [["path", "/bookings"]],
         "document": "{{ steps.document }}"}
      ]
    }

Values in filters, mappings and documents may hold ``~{ResourceFunction}~`` placeholders
and ``{{ trigger.… }}`` / ``{{ steps.<earlier step>.… }}`` references.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from celery.schedules import crontab
from django.core.exceptions import ValidationError

from portal.processflows import registration, templating
from portal.tenancy.models import Organization
from portal.vault import applications
from portal.vault.models import Credential

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MIN_INTERVAL_SECONDS = 10
MAX_STEPS = 20


class DefinitionError(ValidationError):
    """A definition problem, located by a path like ``steps[1].filters``."""


def _problem(where: str, message: str) -> DefinitionError:
    return DefinitionError({where: [message]})


def _credential(
    organization: Organization, where: str, credential_id, application: str
) -> Credential:
    if not isinstance(credential_id, int):
        raise _problem(where, "Choose a credential.")
    credential = Credential.objects.for_tenant(organization).filter(pk=credential_id).first()
    if credential is None:
        raise _problem(where, f"Credential {credential_id} does not exist in this organization.")
    if credential.application != application:
        actual = applications.display_name(credential.application)
        raise _problem(
            where,
            f"Credential {credential.name!r} is for {actual}, "
            f"not {applications.display_name(application)}.",
        )
    return credential


def _application(where: str, name):
    """The connector called ``name``, or a DefinitionError located at ``where``."""
    if not isinstance(name, str) or not name:
        raise _problem(where, "Choose an application.")
    try:
        return applications.get_application(name)
    except ValidationError as error:
        raise _problem(where, " ".join(error.messages)) from None


def _filters(where: str, rows) -> list[list[str]]:
    if rows in (None, ""):
        return []
    if not isinstance(rows, list) or not all(
        isinstance(row, list | tuple) and len(row) == 2 and all(isinstance(v, str) for v in row)
        for row in rows
    ):
        raise _problem(where, "Filters are a list of [key, value] text pairs.")
    return [[key.strip(), value] for key, value in rows]


def _texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def _paths(value) -> list[list[str]]:
    """The dotted path of every ``{{ … }}`` reference in ``value``, split into segments."""
    return [
        match.group(1).split(".")
        for text in _texts(value)
        for match in templating.REFERENCE.finditer(text)
    ]


def _references(where: str, value, earlier: dict[str, set[str] | None]) -> None:
    """Check that references name the trigger or an earlier step, and, where that step's
    output is known before running (a map step's fields, an action's declared answer), a
    field it has. ``earlier`` maps step names to their known fields (None: not known)."""
    for parts in _paths(value):
        root = parts[0]
        if root not in {"trigger", "steps"}:
            raise _problem(where, f"References start with trigger. or steps., not {root}.")
        if root != "steps":
            continue
        name = parts[1] if len(parts) > 1 else ""
        if name not in earlier:
            raise _problem(
                where,
                f"{{{{ steps.{name} }}}} refers to no earlier step"
                + (
                    f"; earlier steps: {', '.join(earlier)}."
                    if earlier
                    else "; this is the first step."
                ),
            )
        fields = earlier[name]
        if len(parts) > 2 and fields is not None and parts[2] not in fields:
            raise _problem(
                where,
                f"{{{{ {'.'.join(parts)} }}}}: step {name!r} has no field {parts[2]!r}; "
                f"it has: {', '.join(sorted(fields))}.",
            )


def _output_fields(app, action: str) -> set[str] | None:
    """The top-level fields an action's answer declares (None when it declares none)."""
    schema = app.actions[action].output_schema or {}
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return set(properties) if isinstance(properties, Mapping) and properties else None


def _action(organization, where: str, spec, earlier: dict[str, set[str] | None]) -> dict:
    if not isinstance(spec, dict):
        raise _problem(where, "An action is an object with an application and an action.")
    application = spec.get("application")
    app = _application(f"{where}.application", application)
    action = spec.get("action")
    if action not in app.actions:
        raise _problem(
            f"{where}.action",
            f"{app.display_name} has no action {action!r}; it has: {', '.join(app.actions)}.",
        )
    credential = _credential(
        organization, f"{where}.credential", spec.get("credential"), application
    )
    rows = _filters(f"{where}.filters", spec.get("filters"))
    for key, value in rows:
        _references(f"{where}.filters.{key}", value, earlier)
    refusal = registration.typed_key_refusal(application, action, rows)
    if refusal is not None:
        key, message = refusal
        raise _problem(f"{where}.filters.{key}", message)
    problems = applications.check_filters(application, action, rows)
    if problems:
        raise _problem(f"{where}.filters", " ".join(problems))
    document = spec.get("document")
    if document not in (None, ""):
        _references(f"{where}.document", document, earlier)
    cleaned = {
        "type": "action",
        "application": application,
        "credential": credential.pk,
        "action": action,
        "filters": rows,
    }
    if document not in (None, ""):
        cleaned["document"] = document
    return cleaned


def _schedule(where: str, spec) -> dict:
    if not isinstance(spec, dict):
        raise _problem(where, "Choose an interval, a cron expression or once.")
    if spec.get("once") is True:
        return {"once": True}
    if "cron" in spec:
        return {"cron": _cron(f"{where}.cron", spec["cron"])}
    every = spec.get("every_seconds")
    if isinstance(every, bool) or not isinstance(every, int):
        raise _problem(
            f"{where}.every_seconds", "Choose an interval in whole seconds, a cron or once."
        )
    if every < MIN_INTERVAL_SECONDS:
        raise _problem(
            f"{where}.every_seconds",
            f"Poll at most every {MIN_INTERVAL_SECONDS} seconds (got {every}).",
        )
    return {"every_seconds": every}


CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
CRON_TEXT = re.compile(r"^[0-9A-Za-z*/,\-]+$")


def _cron(where: str, expression) -> str:
    """A five-field cron expression, each field checked by the scheduler's own parser."""
    fields = str(expression or "").split()
    if len(fields) != 5:
        raise _problem(where, "A cron expression has five fields: minute hour day month weekday.")
    for name, value in zip(CRON_FIELDS, fields, strict=True):
        label = name.replace("_", " ")
        if not CRON_TEXT.match(value):
            raise _problem(where, f"The {label} field {value!r} is not valid.")
        try:
            crontab(**{name: value})
        except (ValueError, TypeError, IndexError) as error:
            raise _problem(where, f"The {label} field {value!r} is not valid: {error}") from None
    return " ".join(fields)


def _trigger(organization, spec) -> dict:
    if not isinstance(spec, dict) or spec.get("type") not in {"webhook", "polling"}:
        raise _problem("trigger.type", "The trigger is 'webhook' or 'polling'.")
    if spec["type"] == "webhook":
        application = spec.get("application")
        if not application and not isinstance(spec.get("credential"), int):
            raise _problem("trigger.credential", "Choose the credential the events come from.")
        app = _application("trigger.application", application)
        events = spec.get("events")
        available = applications.webhook_events(application)
        if not available:
            raise _problem("trigger.application", f"{app.display_name} cannot call webhooks.")
        if not isinstance(events, list) or not events:
            raise _problem(
                "trigger.events", f"Choose at least one event of: {', '.join(available)}."
            )
        unknown = [e for e in events if not isinstance(e, str) or e not in available]
        if unknown:
            raise _problem(
                "trigger.events",
                f"Unknown event(s) {', '.join(map(str, unknown))}; "
                f"choose from {', '.join(available)}.",
            )
        scope = spec.get("scope", "organization")
        if scope not in {"organization", "user"}:
            raise _problem("trigger.scope", "The scope is 'organization' or 'user'.")
        credential = _credential(
            organization, "trigger.credential", spec.get("credential"), application
        )
        registration = spec.get("registration", "automatic")
        if registration not in {"automatic", "manual"}:
            raise _problem(
                "trigger.registration",
                "Registration is 'automatic' (the portal subscribes the Processflow URL when "
                "deploying) or 'manual' (another processflow's Create Webhook Subscription "
                "step does).",
            )
        return {
            "type": "webhook",
            "application": application,
            "credential": credential.pk,
            "events": list(dict.fromkeys(events)),
            "scope": scope,
            "registration": registration,
        }
    cleaned = {"type": "polling", "schedule": _schedule("trigger.schedule", spec.get("schedule"))}
    source = spec.get("source")
    cleaned["source"] = _action(organization, "trigger.source", source, {}) if source else None
    if cleaned["source"]:
        cleaned["source"].pop("type")
        cleaned["source"].pop("document", None)
    return cleaned


def clean_definition(organization: Organization, definition) -> dict:
    """Check and normalise a definition; raises DefinitionError naming the first problem."""
    if not isinstance(definition, dict):
        raise _problem("definition", "A definition is an object with a trigger and steps.")
    trigger = _trigger(organization, definition.get("trigger"))
    steps = definition.get("steps") or []
    if not isinstance(steps, list) or not steps:
        raise _problem("steps", "Add at least one step.")
    if len(steps) > MAX_STEPS:
        raise _problem("steps", f"At most {MAX_STEPS} steps.")
    cleaned_steps: list[dict] = []
    earlier: dict[str, set[str] | None] = {}
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, dict):
            raise _problem(where, "A step is an object.")
        name = step.get("name", "")
        if not isinstance(name, str) or not STEP_NAME.match(name):
            raise _problem(
                f"{where}.name",
                "Name steps with lower-case letters, digits and _, e.g. 'fetch_event'.",
            )
        if name in earlier:
            raise _problem(f"{where}.name", f"Two steps are named {name!r}.")
        kind = step.get("type", "action")
        if kind == "map":
            mapping = step.get("mapping")
            if not isinstance(mapping, dict) or not mapping:
                raise _problem(f"{where}.mapping", "A map step maps at least one field.")
            for key, value in mapping.items():
                _references(f"{where}.mapping.{key}", value, earlier)
            cleaned = {"type": "map", "mapping": mapping}
            fields = {str(key) for key in mapping}
        elif kind == "action":
            cleaned = _action(organization, where, step, earlier)
            fields = _output_fields(
                applications.get_application(cleaned["application"]), cleaned["action"]
            )
        else:
            raise _problem(f"{where}.type", "A step is an 'action' or a 'map'.")
        cleaned_steps.append({"name": name, **cleaned})
        earlier[name] = fields
    return {"trigger": trigger, "steps": cleaned_steps}


def credentials_used(definition: dict) -> list[int]:
    """Every credential id a definition uses, trigger first, without repeats."""
    ids = []
    trigger = definition.get("trigger", {})
    if trigger.get("credential"):
        ids.append(trigger["credential"])
    if (trigger.get("source") or {}).get("credential"):
        ids.append(trigger["source"]["credential"])
    ids += [s["credential"] for s in definition.get("steps", []) if s.get("credential")]
    return list(dict.fromkeys(ids))
