"""Processflow definitions: what a version holds, and the checks that make a bad definition
a clear error when it is saved instead of a failed run later.

A definition is JSON::

    {
      "trigger": {"type": "webhook", "application": "calendly", "credential": 3,
                  "events": ["invitee.created"], "options": {"scope": "organization"}}
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

What a credential reference is belongs to the host: the portal names a stored credential
by its id, an agent by the name it was given there. :func:`check` asks the host's
:class:`CredentialCatalog` about each reference and checks everything else itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import connectors
from connectors import errors as connector_errors

from . import templating
from .schedule import CronError, check_cron

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MIN_INTERVAL_SECONDS = 10
MAX_STEPS = 20
REGISTRATIONS = ("automatic", "manual")


class DefinitionError(ValueError):
    """A definition problem, located by a path like ``steps[1].filters``."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True)
class CredentialInfo:
    """What a host tells about one credential reference (never its secrets)."""

    ref: Any
    name: str
    application: str


class CredentialCatalog(Protocol):
    """The host's credentials, as definitions may refer to them."""

    def find(self, ref: object) -> CredentialInfo | str:
        """The credential ``ref`` names, or a message saying why there is none
        (e.g. "Choose a credential." or "Credential 7 does not exist in this organization.")."""
        ...


# A catalog whose references name a credential *within* an application (an agent's
# credentials are named per application: "main" of Calendly) may also offer
# ``find_for(ref, application) -> CredentialInfo | str``; the checks prefer it.


# --- Applications, as the connectors declare them -------------------------------------------


def installed_applications() -> list[connectors.Connector]:
    """Installed connectors, by display name."""
    return sorted(connectors.all_connectors(), key=lambda c: c.display_name.lower())


def application(name: object) -> connectors.Connector:
    """The connector called ``name``; ``LookupError`` listing the installed ones."""
    try:
        return connectors.get_connector(name if isinstance(name, str) else "")
    except connector_errors.UnknownConnector:
        installed = ", ".join(c.name for c in installed_applications())
        raise LookupError(f"Unknown application {name!r}; installed: {installed}.") from None


def filled_by_host(app: connectors.Connector, action: str) -> frozenset[str]:
    """Filter keys of ``action`` that the host fills in itself and users must not type:
    the signing key of the action that subscribes a webhook (the host hands over the
    subscribed processflow's own key, which it keeps encrypted)."""
    webhooks = app.webhooks
    if webhooks is not None and webhooks.subscribe_action == action:
        return frozenset({webhooks.signing_key_key})
    return frozenset()


def typed_key_refusal(app: connectors.Connector, action: str, rows) -> tuple[str, str] | None:
    """``(key, message)`` when filter rows type a value for a key the host fills in.

    Refused rather than adopted: the host already gives the application a random key of
    its own for the subscribed processflow, kept encrypted and never shown. A typed key
    would sit in plain text in the definition (shown on its page, in the API, in run
    records) and could be weak; sent but not kept, every delivery would fail verification.
    """
    filled = filled_by_host(app, action)
    typed = next((key for key, _ in rows if key in filled), None)
    if typed is None:
        return None
    return typed, (
        f"Remove the {typed} row: a signing key typed here would be stored and shown in "
        f"plain text. When this step subscribes a Processflow URL, the portal gives "
        f"{app.display_name} that processflow's own signing key (generated, kept encrypted, "
        "never shown), so its deliveries verify."
    )


def trigger_options(trigger: Mapping[str, Any]) -> dict[str, str]:
    """A webhook trigger's subscription options (what the application declares: Calendly's
    scope, GitHub's owner and repo). Definitions saved before options were declared kept
    Calendly's scope beside the events; it is read as the option it is."""
    options = trigger.get("options")
    if isinstance(options, Mapping):
        return {str(k): v for k, v in options.items()}
    return {"scope": trigger["scope"]} if trigger.get("scope") else {}


def options_from_rows(app: connectors.Connector, rows) -> dict[str, str]:
    """The subscription options among a subscribing step's filter rows."""
    declared = {o.name for o in app.webhooks.options} if app.webhooks is not None else set()
    return {key: value for key, value in rows if key in declared and value not in (None, "")}


def filter_problems(app: connectors.Connector, action: str, rows) -> list[str]:
    """Problems with action-filter rows that are certain before running."""
    try:
        return app.check_filters(action, [tuple(row) for row in rows])
    except connector_errors.ConnectorError as error:
        return [str(error)]


# --- The checks -------------------------------------------------------------------------------


def _application(where: str, name) -> connectors.Connector:
    if not isinstance(name, str) or not name:
        raise DefinitionError(where, "Choose an application.")
    try:
        return application(name)
    except LookupError as error:
        raise DefinitionError(where, str(error.args[0])) from None


def _credential(catalog: CredentialCatalog, where: str, ref, app: connectors.Connector):
    find_for = getattr(catalog, "find_for", None)
    found = find_for(ref, app.name) if find_for is not None else catalog.find(ref)
    if isinstance(found, str):
        raise DefinitionError(where, found)
    if found.application != app.name:
        try:
            actual = application(found.application).display_name
        except LookupError:
            actual = found.application
        raise DefinitionError(
            where, f"Credential {found.name!r} is for {actual}, not {app.display_name}."
        )
    return found.ref


def _filters(where: str, rows) -> list[list[str]]:
    if rows in (None, ""):
        return []
    if not isinstance(rows, list) or not all(
        isinstance(row, list | tuple) and len(row) == 2 and all(isinstance(v, str) for v in row)
        for row in rows
    ):
        raise DefinitionError(where, "Filters are a list of [key, value] text pairs.")
    return [[key.strip(), value] for key, value in rows]


def _paths(value) -> list[list[str]]:
    """The dotted path of every ``{{ … }}`` reference in ``value``, split into segments."""
    return [
        match.group(1).split(".")
        for text in templating.texts(value)
        for match in templating.REFERENCE.finditer(text)
    ]


def _references(where: str, value, earlier: dict[str, set[str] | None]) -> None:
    """Check that references name the trigger or an earlier step, and, where that step's
    output is known before running (a map step's fields, an action's declared answer), a
    field it has. ``earlier`` maps step names to their known fields (None: not known)."""
    for parts in _paths(value):
        root = parts[0]
        if root not in {"trigger", "steps"}:
            raise DefinitionError(where, f"References start with trigger. or steps., not {root}.")
        if root != "steps":
            continue
        name = parts[1] if len(parts) > 1 else ""
        if name not in earlier:
            raise DefinitionError(
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
            raise DefinitionError(
                where,
                f"{{{{ {'.'.join(parts)} }}}}: step {name!r} has no field {parts[2]!r}; "
                f"it has: {', '.join(sorted(fields))}.",
            )


def output_fields(app: connectors.Connector, action: str) -> set[str] | None:
    """The top-level fields an action's answer declares (None when it declares none)."""
    schema = app.actions[action].output_schema or {}
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return set(properties) if isinstance(properties, Mapping) and properties else None


def _action(catalog, where: str, spec, earlier: dict[str, set[str] | None]) -> dict:
    if not isinstance(spec, dict):
        raise DefinitionError(where, "An action is an object with an application and an action.")
    app = _application(f"{where}.application", spec.get("application"))
    action = spec.get("action")
    if action not in app.actions:
        raise DefinitionError(
            f"{where}.action",
            f"{app.display_name} has no action {action!r}; it has: {', '.join(app.actions)}.",
        )
    credential = _credential(catalog, f"{where}.credential", spec.get("credential"), app)
    rows = _filters(f"{where}.filters", spec.get("filters"))
    for key, value in rows:
        _references(f"{where}.filters.{key}", value, earlier)
    refusal = typed_key_refusal(app, action, rows)
    if refusal is not None:
        raise DefinitionError(f"{where}.filters.{refusal[0]}", refusal[1])
    problems = filter_problems(app, action, rows)
    if problems:
        raise DefinitionError(f"{where}.filters", " ".join(problems))
    document = spec.get("document")
    if document not in (None, ""):
        _references(f"{where}.document", document, earlier)
    cleaned = {
        "type": "action",
        "application": app.name,
        "credential": credential,
        "action": action,
        "filters": rows,
    }
    if document not in (None, ""):
        cleaned["document"] = document
    return cleaned


def _schedule(where: str, spec) -> dict:
    if not isinstance(spec, dict):
        raise DefinitionError(where, "Choose an interval, a cron expression or once.")
    if spec.get("once") is True:
        return {"once": True}
    if "cron" in spec:
        try:
            return {"cron": check_cron(spec["cron"])}
        except CronError as error:
            raise DefinitionError(f"{where}.cron", str(error)) from None
    every = spec.get("every_seconds")
    if isinstance(every, bool) or not isinstance(every, int):
        raise DefinitionError(
            f"{where}.every_seconds", "Choose an interval in whole seconds, a cron or once."
        )
    if every < MIN_INTERVAL_SECONDS:
        raise DefinitionError(
            f"{where}.every_seconds",
            f"Poll at most every {MIN_INTERVAL_SECONDS} seconds (got {every}).",
        )
    return {"every_seconds": every}


def _webhook_trigger(catalog, spec: dict) -> dict:
    name = spec.get("application")
    if not name and spec.get("credential") in (None, ""):
        raise DefinitionError("trigger.credential", "Choose the credential the events come from.")
    app = _application("trigger.application", name)
    events = spec.get("events")
    available = list(app.webhooks.events) if app.webhooks is not None else []
    if not available:
        raise DefinitionError("trigger.application", f"{app.display_name} cannot call webhooks.")
    if not isinstance(events, list) or not events:
        raise DefinitionError(
            "trigger.events", f"Choose at least one event of: {', '.join(available)}."
        )
    unknown = [e for e in events if not isinstance(e, str) or e not in available]
    if unknown:
        raise DefinitionError(
            "trigger.events",
            f"Unknown event(s) {', '.join(map(str, unknown))}; choose from {', '.join(available)}.",
        )
    limit = app.webhooks.max_events
    if limit is not None and len(set(events)) > limit:
        raise DefinitionError(
            "trigger.events",
            f"A {app.display_name} subscription delivers at most {limit} event(s); "
            "make one processflow per event.",
        )
    given = spec.get("options")
    if given is not None and not isinstance(given, dict):
        raise DefinitionError("trigger.options", "Subscription options are an object.")
    try:
        options = app.subscription_options(trigger_options({**spec, "options": given}))
    except connector_errors.FilterError as error:
        where = f"trigger.options.{error.key}" if error.key else "trigger.options"
        raise DefinitionError(where, str(error)) from None
    credential = _credential(catalog, "trigger.credential", spec.get("credential"), app)
    registration = spec.get("registration", "automatic")
    if registration not in REGISTRATIONS:
        raise DefinitionError(
            "trigger.registration",
            "Registration is 'automatic' (the portal subscribes the Processflow URL when "
            "deploying) or 'manual' (another processflow's Create Webhook Subscription "
            "step does).",
        )
    return {
        "type": "webhook",
        "application": app.name,
        "credential": credential,
        "events": list(dict.fromkeys(events)),
        "options": options,
        "registration": registration,
    }


def _trigger(catalog, spec) -> dict:
    if not isinstance(spec, dict) or spec.get("type") not in {"webhook", "polling"}:
        raise DefinitionError("trigger.type", "The trigger is 'webhook' or 'polling'.")
    if spec["type"] == "webhook":
        return _webhook_trigger(catalog, spec)
    cleaned = {"type": "polling", "schedule": _schedule("trigger.schedule", spec.get("schedule"))}
    source = spec.get("source")
    cleaned["source"] = _action(catalog, "trigger.source", source, {}) if source else None
    if cleaned["source"]:
        cleaned["source"].pop("type")
        cleaned["source"].pop("document", None)
    return cleaned


def check(definition: object, *, credentials: CredentialCatalog) -> dict:
    """Check and normalise a definition; raises :class:`DefinitionError` at the first problem."""
    if not isinstance(definition, dict):
        raise DefinitionError("definition", "A definition is an object with a trigger and steps.")
    trigger = _trigger(credentials, definition.get("trigger"))
    steps = definition.get("steps") or []
    if not isinstance(steps, list) or not steps:
        raise DefinitionError("steps", "Add at least one step.")
    if len(steps) > MAX_STEPS:
        raise DefinitionError("steps", f"At most {MAX_STEPS} steps.")
    cleaned_steps: list[dict] = []
    earlier: dict[str, set[str] | None] = {}
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, dict):
            raise DefinitionError(where, "A step is an object.")
        name = step.get("name", "")
        if not isinstance(name, str) or not STEP_NAME.match(name):
            raise DefinitionError(
                f"{where}.name",
                "Name steps with lower-case letters, digits and _, e.g. 'fetch_event'.",
            )
        if name in earlier:
            raise DefinitionError(f"{where}.name", f"Two steps are named {name!r}.")
        kind = step.get("type", "action")
        if kind == "map":
            mapping = step.get("mapping")
            if not isinstance(mapping, dict) or not mapping:
                raise DefinitionError(f"{where}.mapping", "A map step maps at least one field.")
            for key, value in mapping.items():
                _references(f"{where}.mapping.{key}", value, earlier)
            cleaned = {"type": "map", "mapping": mapping}
            fields = {str(key) for key in mapping}
        elif kind == "action":
            cleaned = _action(credentials, where, step, earlier)
            fields = output_fields(application(cleaned["application"]), cleaned["action"])
        else:
            raise DefinitionError(f"{where}.type", "A step is an 'action' or a 'map'.")
        cleaned_steps.append({"name": name, **cleaned})
        earlier[name] = fields
    return {"trigger": trigger, "steps": cleaned_steps}


def credentials_used(definition: dict) -> list:
    """Every credential reference a definition uses, trigger first, without repeats."""
    refs = []
    trigger = definition.get("trigger", {})
    if trigger.get("credential") not in (None, ""):
        refs.append(trigger["credential"])
    if (trigger.get("source") or {}).get("credential") not in (None, ""):
        refs.append(trigger["source"]["credential"])
    refs += [s["credential"] for s in definition.get("steps", []) if s.get("credential")]
    unique: list = []
    for ref in refs:
        if ref not in unique:  # references may be unhashable (an agent's {"name": …})
            unique.append(ref)
    return unique
