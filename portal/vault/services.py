"""Writes to the vault, and validation of credentials against their application.

Every function takes the organization first and the acting membership (or a system label
for tasks); pages, API views and Celery tasks all call these. Secrets arrive as plain
strings, are checked, encrypted and dropped; they never reach a log, an exception message,
an audit entry or a return value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal.tenancy.models import Membership, Organization
from portal.tenancy.permissions import Perm
from portal.vault import applications, crypto
from portal.vault.applications import ValidationOutcome
from portal.vault.audit import Actor, as_actor, record_decrypt_failure
from portal.vault.audit import record as record_event
from portal.vault.keys import active_data_key, open_secrets, seal_secrets
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from portal.vault.selectors import access_credential_by_id

NAME_MAX = 100


# --- Input checks ----------------------------------------------------------------------------


def _check_name(organization: Organization, application: str, name, *, exclude_pk=None) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError({"name": ["Give the credential a name, e.g. 'Sales team'."]})
    if len(name) > NAME_MAX:
        raise ValidationError({"name": [f"Keep the name under {NAME_MAX} characters."]})
    clash = Credential.objects.for_tenant(organization).filter(
        application=application, name__iexact=name
    )
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        display = applications.display_name(application)
        raise ValidationError({"name": [f"A {display} credential named {name!r} already exists."]})
    return name


def _check_secret(label: str, value, max_length: int) -> str:
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
            f"The {label} contains non-ASCII characters, which tokens never do. "
            "Check that you pasted the token itself."
        )
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(f"The {label} contains spaces, line breaks or control characters.")
    return value


def _check_plain(label: str, value, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{label} must be text.")
    value = value.strip()
    if len(value) > max_length:
        raise ValueError(f"{label} is too long (at most {max_length} characters).")
    return value


@dataclass
class CheckedInput:
    fields: dict[str, str]
    secrets: dict[str, str] = field(repr=False)


def check_input(
    *,
    application: str,
    type: str,
    fields: dict | None,
    secrets: dict | None,
    partial: bool = False,
) -> CheckedInput:
    """Check fields and secrets against the connector's declaration; ValidationError names
    each problem by field. With ``partial``, absent fields keep their stored values."""
    spec = applications.credential_type(application, type)
    fields = fields or {}
    secrets = secrets or {}
    if not isinstance(fields, dict) or not isinstance(secrets, dict):
        raise ValidationError("fields and secrets must be objects mapping field names to text.")
    declared = {f.name: f for f in spec.fields}
    errors: dict[str, list[str]] = {}
    display = applications.display_name(application)
    for name in [*fields, *secrets]:
        if name not in declared:
            errors.setdefault(name, []).append(
                f"{display}'s {spec.label} credential has no field {name!r}; it has: "
                f"{', '.join(declared)}."
            )
    for name in fields:
        if name in declared and declared[name].secret:
            errors.setdefault(name, []).append(
                f"{declared[name].label} is secret: send it in secrets."
            )
    for name in secrets:
        if name in declared and not declared[name].secret:
            errors.setdefault(name, []).append(
                f"{declared[name].label} is not secret: send it in fields."
            )
    checked_fields: dict[str, str] = {}
    checked_secrets: dict[str, str] = {}
    for name, spec_field in declared.items():
        max_length = getattr(spec_field, "max_length", None) or 4096
        source = secrets if spec_field.secret else fields
        if name not in source:
            if spec_field.required and not partial:
                errors.setdefault(name, []).append(f"The {spec_field.label} is required.")
            continue
        try:
            if spec_field.secret:
                checked_secrets[name] = _check_secret(spec_field.label, source[name], max_length)
            else:
                value = _check_plain(spec_field.label, source[name], max_length)
                if not value and spec_field.required:
                    raise ValueError(f"The {spec_field.label} is required.")
                checked_fields[name] = value
        except ValueError as problem:
            errors.setdefault(name, []).append(str(problem))
    if errors:
        raise ValidationError(errors)
    return CheckedInput(fields=checked_fields, secrets=checked_secrets)


# --- Writes ------------------------------------------------------------------------------------


@transaction.atomic
def create_credential(
    organization: Organization,
    *,
    actor: Actor | Membership,
    application: str,
    name: str,
    type: str = "rest",
    fields: dict | None = None,
    secrets: dict | None = None,
) -> Credential:
    """Store a new credential with its secrets encrypted; status starts ``unvalidated``."""
    actor = as_actor(actor)
    actor.require(Perm.CHANGE)
    applications.credential_type(application, type)  # unknown application or type: 400
    name = _check_name(organization, application, name)
    checked = check_input(application=application, type=type, fields=fields, secrets=secrets)
    credential = Credential(
        organization=organization,
        application=application,
        type=type,
        name=name,
        fields=checked.fields,
        created_by=actor.user,
    )
    seal_secrets(credential, checked.secrets, active_data_key(organization))
    credential.save()
    record_event(credential, CredentialEvent.Action.CREATED, actor=actor)
    return credential


@transaction.atomic
def update_credential(
    organization: Organization,
    *,
    actor: Actor | Membership,
    credential_id: int,
    name: str | None = None,
    fields: dict | None = None,
    secrets: dict | None = None,
) -> Credential:
    """Rename, change non-secret fields, or replace secrets (never read them).

    Replacing a secret or a field resets the status to ``unvalidated``.
    """
    actor = as_actor(actor)
    credential = access_credential_by_id(organization, credential_id, for_update=True)
    actor.require(Perm.CHANGE)
    checked = check_input(
        application=credential.application,
        type=credential.type,
        fields=fields,
        secrets=secrets,
        partial=True,
    )
    changed = []
    if name is not None:
        new_name = _check_name(organization, credential.application, name, exclude_pk=credential.pk)
        if new_name != credential.name:
            credential.name = new_name
            changed.append("name")
    if checked.fields and checked.fields != {k: credential.fields.get(k) for k in checked.fields}:
        credential.fields = {**credential.fields, **checked.fields}
        changed.append("fields")
    if checked.secrets:
        # Re-encrypt every secret of the row under the active key, so one row never mixes
        # data keys: the existing ones are opened first (a corrupted one must be replaced).
        try:
            kept = open_secrets(credential)
        except crypto.VaultError:
            kept = {}
            missing = set(credential.secret_values) - set(checked.secrets)
            if missing:
                raise ValidationError(
                    "The stored secret cannot be decrypted; enter every secret field anew."
                ) from None
        credential.secret_values = {}
        seal_secrets(credential, {**kept, **checked.secrets}, active_data_key(organization))
        del kept
    if checked.secrets or "fields" in changed:
        credential.status = CredentialStatus.UNVALIDATED
        credential.status_message = ""
        credential.account = {}
    credential.save()
    if checked.secrets:
        record_event(
            credential,
            CredentialEvent.Action.SECRET_REPLACED,
            actor=actor,
            fields=sorted(checked.secrets),
        )
    if changed:
        record_event(credential, CredentialEvent.Action.UPDATED, actor=actor, changed=changed)
    return credential


@transaction.atomic
def delete_credential(
    organization: Organization, *, actor: Actor | Membership, credential_id: int
) -> None:
    """Delete a credential and its ciphertext; its audit history stays."""
    actor = as_actor(actor)
    credential = access_credential_by_id(organization, credential_id, for_update=True)
    actor.require(Perm.CHANGE)
    record_event(credential, CredentialEvent.Action.DELETED, actor=actor)
    credential.delete()


# --- Validation --------------------------------------------------------------------------------


def check_connection(
    organization: Organization,
    *,
    actor: Actor | Membership,
    application: str,
    type: str = "rest",
    fields: dict | None = None,
    secrets: dict | None = None,
    credential_id: int | None = None,
) -> ValidationOutcome:
    """The Validate button: check typed values (not saved) against the application.

    Editing a stored credential, secrets left empty are taken from ``credential_id``.
    """
    actor = as_actor(actor)
    actor.require(Perm.CHANGE)
    stored_fields: dict = {}
    stored_secrets: dict = {}
    if credential_id is not None:
        credential = access_credential_by_id(organization, credential_id)
        application, type = credential.application, credential.type
        stored_fields = dict(credential.fields)
        try:
            stored_secrets = open_secrets(credential)
        except crypto.VaultError:
            stored_secrets = {}
    checked = check_input(
        application=application,
        type=type,
        fields={**stored_fields, **(fields or {})},
        secrets={**stored_secrets, **(secrets or {})},
    )
    return applications.validate(
        application, type=type, fields=checked.fields, secrets=checked.secrets
    )


def validate_credential(
    organization: Organization, *, actor: Actor | Membership, credential_id: int
) -> ValidationOutcome:
    """Check a stored credential against its application and record the result."""
    actor = as_actor(actor)
    credential = access_credential_by_id(organization, credential_id)
    actor.require(Perm.CHANGE)
    return _validate_and_record(credential, actor)


def revalidate(credential: Credential, *, label: str) -> ValidationOutcome:
    """Check a stored credential on the system's behalf (the periodic task)."""
    return _validate_and_record(credential, Actor.system(label))


def _validate_and_record(credential: Credential, actor: Actor) -> ValidationOutcome:
    try:
        secrets = open_secrets(credential)
    except crypto.VaultError:
        record_decrypt_failure(credential, actor=actor)
        outcome = ValidationOutcome(
            ok=False,
            message=applications.CANNOT_DECRYPT,
            account={},
            status=CredentialStatus.INVALID,
        )
    else:
        outcome = applications.validate(
            credential.application,
            type=credential.type,
            fields=credential.fields,
            secrets=secrets,
            key=f"credential:{credential.pk}",
        )
        del secrets
    now = timezone.now()
    updates = {"checked_at": now, "status_message": outcome.message}
    if outcome.status is not None:
        updates["status"] = outcome.status
    if outcome.ok:
        updates["validated_at"] = now
        updates["account"] = outcome.account
    Credential.objects.filter(pk=credential.pk).update(**updates)
    for key, value in updates.items():
        setattr(credential, key, value)
    record_event(
        credential,
        CredentialEvent.Action.VALIDATED,
        actor=actor,
        ok=outcome.ok,
        message=outcome.message,
    )
    return outcome
