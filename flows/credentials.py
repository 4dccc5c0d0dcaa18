"""What a person may type into a credential form, checked against the connector's declared
fields: the same rules and the same messages wherever a credential is entered (the portal's
Manage > App and API, an on-premise agent's App Configurations panel).

Messages name fields, never values: they are shown next to password inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import connectors

from . import definition

DEFAULT_MAX_LENGTH = 4096


class CredentialInputError(ValueError):
    """What is wrong with typed credential values: ``problems`` maps a field name (or
    ``type`` / ``application``) to its messages."""

    def __init__(self, problems: dict[str, list[str]]):
        super().__init__("; ".join(m for ms in problems.values() for m in ms))
        self.problems = problems


@dataclass
class CheckedInput:
    """Cleaned values: non-secret ``fields`` and ``secrets`` (never shown in a repr)."""

    fields: dict[str, str]
    secrets: dict[str, str] = field(repr=False)


def credential_type(application: str, type: str) -> connectors.CredentialType:
    """The application's credential type ``type``; CredentialInputError naming the
    applications or types there are."""
    try:
        app = definition.application(application or "")
    except LookupError as error:
        raise CredentialInputError({"application": [str(error.args[0])]}) from None
    for candidate in app.credential_types:
        if candidate.name == type:
            return candidate
    names = ", ".join(t.name for t in app.credential_types)
    raise CredentialInputError(
        {"type": [f"{app.display_name} has no credential type {type!r}; it has: {names}."]}
    )


def check_secret(label: str, value, max_length: int) -> str:
    """A typed secret, stripped; ValueError saying what is wrong (never the value)."""
    if not isinstance(value, str):
        raise ValueError(f"The {label} must be text.")
    value = value.strip()
    if not value:
        raise ValueError(f"The {label} is empty.")
    if len(value) > max_length:
        raise ValueError(
            f"The {label} is too long ({len(value)} characters; at most {max_length}). "
            "Check that you pasted only the token."
        )
    if not value.isascii():
        raise ValueError(
            f"The {label} contains non-ASCII characters (such as accented letters or curly "
            "quotes), which it cannot contain. Check that you pasted the value itself."
        )
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(f"The {label} contains spaces, line breaks or control characters.")
    return value


def check_plain(label: str, value, max_length: int) -> str:
    """A typed non-secret value, stripped ("" for None)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"The {label} must be text.")
    value = value.strip()
    if len(value) > max_length:
        raise ValueError(f"The {label} is too long (at most {max_length} characters).")
    return value


def check_input(
    *,
    application: str,
    type: str,
    fields: dict | None,
    secrets: dict | None,
    partial: bool = False,
) -> CheckedInput:
    """Check fields and secrets against the connector's declaration.

    Raises :class:`CredentialInputError` naming each problem by field (one message per
    field). With ``partial``, absent fields are left out (they keep their stored values).
    """
    spec = credential_type(application, type)
    fields = {} if fields is None else fields
    secrets = {} if secrets is None else secrets
    if not isinstance(fields, dict) or not isinstance(secrets, dict):
        raise CredentialInputError(
            {"__all__": ["fields and secrets must be objects mapping field names to text."]}
        )
    declared = {f.name: f for f in spec.fields}
    errors: dict[str, list[str]] = {}
    display = definition.application(application).display_name
    for name in dict.fromkeys([*fields, *secrets]):
        if name not in declared:
            errors[str(name)] = [
                f"{display}'s {spec.label} credential has no field {name!r}; it has: "
                f"{', '.join(declared)}."
            ]
    checked_fields: dict[str, str] = {}
    checked_secrets: dict[str, str] = {}
    for name, spec_field in declared.items():
        max_length = getattr(spec_field, "max_length", None) or DEFAULT_MAX_LENGTH
        right, wrong = (secrets, fields) if spec_field.secret else (fields, secrets)
        if name in wrong:
            errors[name] = [
                f"The {spec_field.label} is secret: send it in secrets, not in fields."
                if spec_field.secret
                else f"The {spec_field.label} is not secret: send it in fields, not in secrets."
            ]
            continue
        default = getattr(spec_field, "default", None)
        if name not in right:
            if partial:
                continue
            if default is not None and not spec_field.secret:
                checked_fields[name] = default
            elif spec_field.required:
                errors[name] = [f"The {spec_field.label} is required."]
            continue
        try:
            if spec_field.secret:
                checked_secrets[name] = check_secret(spec_field.label, right[name], max_length)
            else:
                value = check_plain(spec_field.label, right[name], max_length) or (default or "")
                if not value and spec_field.required:
                    raise ValueError(f"The {spec_field.label} is required.")
                choices = tuple(getattr(spec_field, "choices", ()) or ())
                if value and choices and value not in choices:
                    raise ValueError(
                        f"The {spec_field.label} must be one of: {', '.join(choices)}."
                    )
                checked_fields[name] = value
        except ValueError as problem:
            errors[name] = [str(problem)]
    if errors:
        raise CredentialInputError(errors)
    return CheckedInput(fields=checked_fields, secrets=checked_secrets)
