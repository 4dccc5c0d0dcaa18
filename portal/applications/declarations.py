"""What the installed applications declare, as the portal's pages, forms and API need it."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError

import connectors
from flows import definition


def all_applications() -> list[connectors.Connector]:
    """Installed connectors, by display name."""
    return definition.installed_applications()


def get_application(name: str) -> connectors.Connector:
    """The connector called ``name``; ValidationError (a 400) listing the installed ones."""
    try:
        return definition.application(name or "")
    except LookupError as error:
        raise ValidationError({"application": [str(error.args[0])]}) from None


def display_name(name: str) -> str:
    return get_application(name).display_name


def credential_type(application: str, type: str) -> connectors.CredentialType:
    """The application's credential type ``type``; ValidationError naming the ones there are."""
    app = get_application(application)
    for candidate in app.credential_types:
        if candidate.name == type:
            return candidate
    names = ", ".join(t.name for t in app.credential_types)
    raise ValidationError(
        {"type": [f"{app.display_name} has no credential type {type!r}; it has: {names}."]}
    )


def describe(name: str) -> dict:
    """A JSON description for the API: fields, actions and schemas, webhook events."""
    return get_application(name).describe()


def webhook_events(application: str) -> list[str]:
    """The events the application can deliver to a webhook (empty: it cannot)."""
    app = get_application(application)
    return list(app.webhooks.events) if app.webhooks is not None else []


def subscription_options(application: str) -> tuple[connectors.SubscriptionOption, ...]:
    """What a webhook subscription of the application takes besides URL and events
    (a scope, GitHub's owner and repo); empty when it takes nothing or has no
    webhooks."""
    app = get_application(application)
    return app.webhooks.options if app.webhooks is not None else ()


def resource_functions(application: str) -> list[str]:
    """Names usable as ``~{Name}~`` in the application's action filters."""
    return list(get_application(application).resource_functions)


def action_keys() -> list[tuple[str, list[tuple[str, bool]]]]:
    """For the editor's help panel: ``("GitHub › List Repository Issues", [(key,
    required), ...])`` for every action of every application, without the keys the portal
    fills in itself."""
    return [
        (
            f"{app.display_name} › {action.label}",
            [
                (param.key, param.required and param.default is None)
                for param in action.params
                if param.key not in definition.filled_by_host(app, name)
            ],
        )
        for app in all_applications()
        for name, action in app.actions.items()
    ]


def check_filters(application: str, action: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """Problems with action-filter rows that are certain before running (for editors)."""
    return definition.filter_problems(get_application(application), action, rows)
