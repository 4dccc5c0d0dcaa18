"""The processflow editor: a trigger section and step rows, turned into a definition.

Action-filter rows are typed one per line as ``key = value`` (repeated ``events[]`` lines
build a list), as in the seed's action-filter grid. The definition checks everything else.
"""

from __future__ import annotations

import re

from django import forms

from flows.definition import trigger_options
from portal.applications import declarations
from portal.vault.selectors import list_credentials

STEP_SLOTS = 6
STEP_PATH = re.compile(r"^steps\[(\d+)\]$")
SCHEDULES = [
    ("every", "Every N seconds"),
    ("cron", "Cron expression"),
    ("once", "Once, right after deploying"),
]


def parse_rows(text: str) -> list[list[str]]:
    """``key = value`` lines to [[key, value], ...]; blank lines and ``#`` comments skipped."""
    rows = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(f"Line {number}: write 'key = value'.")
        rows.append([key.strip(), value.strip()])
    return rows


def format_rows(rows) -> str:
    return "\n".join(f"{key} = {value}" for key, value in rows or [])


def _action_choices():
    return [("", "—")] + [
        (f"{app.name}:{name}", f"{app.display_name} › {action.label}")
        for app in declarations.all_applications()
        for name, action in app.actions.items()
    ]


def _credential_choices(organization):
    return [("", "—")] + [
        (str(c.pk), f"{declarations.display_name(c.application)} › {c.name}")
        for c in list_credentials(organization)
    ]


class ProcessflowForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    trigger_type = forms.ChoiceField(
        choices=[("webhook", "Triggered: the application calls the Processflow URL"),
                 ("polling", "Polling: runs on a schedule")],
        widget=forms.RadioSelect,
    )  # fmt: skip
    # Triggered
    webhook_credential = forms.ChoiceField(required=False, label="Source credential")
    webhook_events = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Events"
    )
    webhook_registration = forms.ChoiceField(
        required=False,
        choices=[
            ("automatic", "Automatic: deploying subscribes the Processflow URL"),
            ("manual", "Manual: another processflow's Create Webhook Subscription step does"),
        ],
        label="Webhook subscription",
    )
    # Polling
    schedule_kind = forms.ChoiceField(required=False, choices=SCHEDULES, label="Schedule")
    every_seconds = forms.IntegerField(
        required=False, min_value=10, initial=300, label="Every (seconds)"
    )
    cron = forms.CharField(
        required=False, label="Cron (UTC)", help_text="minute hour day month weekday"
    )
    source_action = forms.ChoiceField(required=False, label="Source action (optional)")
    source_credential = forms.ChoiceField(required=False, label="Source credential")
    source_filters = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Source action filter"
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        credentials = _credential_choices(organization)
        actions = _action_choices()
        self.fields["webhook_credential"].choices = credentials
        self.fields["source_credential"].choices = credentials
        self.fields["source_action"].choices = actions
        # Each application's events under its name; values say whose event it is.
        self.fields["webhook_events"].choices = [
            (app.display_name, [(f"{app.name}:{e}", e) for e in app.webhook_events])
            for app in declarations.all_applications()
            if app.webhook_events
        ]
        # Each application's subscription options (a scope, GitHub's owner and
        # repo), as it declares them; only the trigger credential's application's are used.
        self.option_fields: list[tuple[str, str, list[str]]] = []
        for app in declarations.all_applications():
            names = []
            for option in declarations.subscription_options(app.name):
                name = f"webhook_option_{app.name}_{option.name}"
                if option.choices:
                    field = forms.ChoiceField(
                        choices=[("", "—"), *[(c, c) for c in option.choices]],
                        initial=option.default,
                    )
                else:
                    field = forms.CharField(max_length=200)
                field.required = False
                field.label, field.help_text = option.label, option.help
                self.fields[name] = field
                names.append(name)
            if names:
                self.option_fields.append((app.name, app.display_name, names))
        for n in range(STEP_SLOTS):
            self.fields[f"step{n}_name"] = forms.CharField(required=False, label="Step name")
            self.fields[f"step{n}_type"] = forms.ChoiceField(
                required=False,
                choices=[("action", "Run an action"), ("map", "Map fields into a document")],
                label="Kind",
            )
            self.fields[f"step{n}_action"] = forms.ChoiceField(
                required=False, choices=actions, label="Action"
            )
            self.fields[f"step{n}_credential"] = forms.ChoiceField(
                required=False, choices=credentials, label="Credential"
            )
            self.fields[f"step{n}_filters"] = forms.CharField(
                required=False,
                widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
                label="Action filter",
            )
            self.fields[f"step{n}_document"] = forms.CharField(
                required=False, label="Document (optional)"
            )
            self.fields[f"step{n}_mapping"] = forms.CharField(
                required=False,
                widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
                label="Mapping",
            )

    def webhook_option_groups(self):
        """Subscription option fields per application, for the template."""
        return [
            {"application": name, "label": label, "fields": [self[f] for f in fields]}
            for name, label, fields in self.option_fields
        ]

    def step_rows(self):
        """The step fields grouped per slot, for the template."""
        return [
            {
                part: self[f"step{n}_{part}"]
                for part in (
                    "name",
                    "type",
                    "action",
                    "credential",
                    "filters",
                    "document",
                    "mapping",
                )
            }
            | {"index": n}
            for n in range(STEP_SLOTS)
        ]

    @staticmethod
    def initial_from(flow, definition: dict) -> dict:
        trigger = definition["trigger"]
        initial = {
            "name": flow.name,
            "description": flow.description,
            "trigger_type": trigger["type"],
        }
        if trigger["type"] == "webhook":
            app = trigger["application"]
            initial |= {
                "webhook_credential": str(trigger["credential"]),
                "webhook_events": [f"{app}:{e}" for e in trigger["events"]],
                "webhook_registration": trigger.get("registration", "automatic"),
            }
            for name, value in trigger_options(trigger).items():
                initial[f"webhook_option_{app}_{name}"] = value
        else:
            schedule = trigger["schedule"]
            kind = "once" if schedule.get("once") else "cron" if schedule.get("cron") else "every"
            initial |= {
                "schedule_kind": kind,
                "every_seconds": schedule.get("every_seconds"),
                "cron": schedule.get("cron", ""),
            }
            if trigger.get("source"):
                source = trigger["source"]
                initial |= {
                    "source_action": f"{source['application']}:{source['action']}",
                    "source_credential": str(source["credential"]),
                    "source_filters": format_rows(source.get("filters")),
                }
        for n, step in enumerate(definition["steps"][:STEP_SLOTS]):
            initial[f"step{n}_name"] = step["name"]
            initial[f"step{n}_type"] = step.get("type", "action")
            if step.get("type") == "map":
                initial[f"step{n}_mapping"] = format_rows(step["mapping"].items())
            else:
                initial[f"step{n}_action"] = f"{step['application']}:{step['action']}"
                initial[f"step{n}_credential"] = str(step["credential"])
                initial[f"step{n}_filters"] = format_rows(step.get("filters"))
                initial[f"step{n}_document"] = step.get("document", "")
        return initial

    def definition(self) -> dict | None:
        """The definition typed into the form (checked later by clean_definition), or None
        when action-filter or mapping rows cannot be read (the fields then carry errors)."""
        data = self.cleaned_data
        unreadable = False

        def credential(value):
            return int(value) if value and value.isdigit() else None

        def rows(field):
            nonlocal unreadable
            try:
                return parse_rows(data.get(field, ""))
            except forms.ValidationError as error:
                self.add_error(field, error)
                unreadable = True
                return []

        if data["trigger_type"] == "webhook":
            cred = credential(data.get("webhook_credential"))
            application = None
            if cred is not None:
                application = (
                    list_credentials(self.organization)
                    .filter(pk=cred)
                    .values_list("application", flat=True)
                    .first()
                )
            self._application = application
            events = []
            for value in data.get("webhook_events") or []:
                owner, _, event = value.rpartition(":")
                if owner and application and owner != application:
                    self.add_error(
                        "webhook_events",
                        f"{event} is an event of {declarations.display_name(owner)}, not of "
                        "the source credential's application.",
                    )
                    unreadable = True
                events.append(event)
            prefix = f"webhook_option_{application}_"
            options = {
                name[len(prefix) :]: value
                for name, value in data.items()
                if application and name.startswith(prefix) and value not in (None, "")
            }
            trigger = {
                "type": "webhook",
                "application": application,
                "credential": cred,
                "events": events,
                "options": options,
                "registration": data.get("webhook_registration") or "automatic",
            }
        else:
            kind = data.get("schedule_kind") or "every"
            schedule = (
                {"once": True}
                if kind == "once"
                else {"cron": data.get("cron", "")}
                if kind == "cron"
                else {"every_seconds": data.get("every_seconds")}
            )
            source = None
            if data.get("source_action"):
                application, action = data["source_action"].split(":", 1)
                source = {
                    "application": application,
                    "action": action,
                    "credential": credential(data.get("source_credential")),
                    "filters": rows("source_filters"),
                }
            trigger = {"type": "polling", "schedule": schedule, "source": source}
        steps = []
        # Which slot each step of the definition came from, to put its errors back there.
        self.step_slots = []
        for n in range(STEP_SLOTS):
            name = (data.get(f"step{n}_name") or "").strip()
            if not name:
                continue
            self.step_slots.append(n)
            if data.get(f"step{n}_type") == "map":
                steps.append(
                    {"name": name, "type": "map", "mapping": dict(rows(f"step{n}_mapping"))}
                )
                continue
            application, _, action = (data.get(f"step{n}_action") or ":").partition(":")
            step = {
                "name": name,
                "type": "action",
                "application": application or None,
                "action": action,
                "credential": credential(data.get(f"step{n}_credential")),
                "filters": rows(f"step{n}_filters"),
            }
            if data.get(f"step{n}_document"):
                step["document"] = data[f"step{n}_document"]
            steps.append(step)
        if unreadable:
            return None
        return {"trigger": trigger, "steps": steps}

    def field_for(self, where: str) -> str | None:
        """The form field a definition problem located at ``where`` belongs to (None: the
        form as a whole), e.g. ``steps[1].filters.uuid`` -> ``step2_filters`` when the
        second step was typed in the third slot."""
        head, _, rest = where.partition(".")
        part = rest.split(".", 1)[0]
        if head == "name" or head == "description":
            return head
        if head == "trigger":
            if part == "type":
                return "trigger_type"
            if part == "schedule":
                sub = rest.split(".")[1] if rest.count(".") else ""
                return {"every_seconds": "every_seconds", "cron": "cron"}.get(sub, "schedule_kind")
            if part == "source":
                sub = rest.split(".")[1] if rest.count(".") else ""
                return {"credential": "source_credential", "filters": "source_filters"}.get(
                    sub, "source_action"
                )
            return {
                "credential": "webhook_credential",
                "application": "webhook_credential",
                "events": "webhook_events",
                "registration": "webhook_registration",
            }.get(part) or self._option_field(rest)
        match = STEP_PATH.match(head)
        slots = getattr(self, "step_slots", [])
        if match and int(match.group(1)) < len(slots):
            slot = slots[int(match.group(1))]
            field = {"application": "action", "": "name"}.get(part, part)
            if f"step{slot}_{field}" in self.fields:
                return f"step{slot}_{field}"
        return None

    def _option_field(self, rest: str) -> str | None:
        """``options.repo`` -> the field of the trigger application's option ``repo``."""
        parts = rest.split(".")
        application = getattr(self, "_application", None)
        if parts[0] != "options" or len(parts) < 2 or not application:
            return None
        name = f"webhook_option_{application}_{parts[1]}"
        return name if name in self.fields else None

    def add_definition_error(self, error) -> None:
        """Show a service's ValidationError on the fields it names."""
        if not hasattr(error, "error_dict"):
            for message in error.messages:
                self.add_error(None, message)
            return
        for where, problems in error.message_dict.items():
            field = self.field_for(where)
            for problem in problems:
                if field is None:
                    self.add_error(None, f"{where}: {problem}" if "." in where else problem)
                else:
                    self.add_error(field, problem)
