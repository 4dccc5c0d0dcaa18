"""Writes to the vault, and validation of credentials against their application.

Every function takes the organization first and the acting membership (or a system label
for tasks); pages, API views and Celery tasks all call these. Secrets arrive as plain
strings, are checked, encrypted and dropped; they never reach a log, an exception message,
an audit entry or a return value.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from flows import CredentialUnavailable
from flows import credentials as flow_credentials
from flows import definition as flow_definition
from flows import envelope as crypto
from flows.credentials import CheckedInput
from flows.redaction import redact
from portal.applications import declarations, validation
from portal.applications.validation import ValidationOutcome
from portal.queues import enqueue
from portal.tenancy.models import Membership, Organization
from portal.tenancy.permissions import Perm
from portal.vault import calls, health
from portal.vault.audit import Actor, as_actor
from portal.vault.audit import record as record_event
from portal.vault.keys import active_data_key, open_secrets, seal_secrets
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from portal.vault.opener import CANNOT_DECRYPT, open_credential
from portal.vault.selectors import access_credential_by_id

logger = logging.getLogger(__name__)

NAME_MAX = 100
# The task (portal/vault/tasks.py) that validates a stored credential again.
REVALIDATE_CREDENTIAL = "portal.maintenance.revalidate_credential"


# --- Input checks ----------------------------------------------------------------------------


def _name_problem(
    organization: Organization, application: str, name, *, exclude_pk=None
) -> tuple[str, str | None]:
    """The cleaned name and what is wrong with it (None: nothing)."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        return name, "Give the credential a name, e.g. 'Sales team'."
    if len(name) > NAME_MAX:
        return name, f"Keep the name under {NAME_MAX} characters."
    clash = Credential.objects.for_tenant(organization).filter(
        application=application, name__iexact=name
    )
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    existing = clash.values_list("name", flat=True).first()
    if existing is not None:
        return name, _duplicate_message(application, existing)
    return name, None


def _duplicate_message(application: str, existing: str) -> str:
    display = declarations.display_name(application)
    return (
        f"A {display} credential named {existing!r} already exists; names differ by more "
        "than upper and lower case. Choose another name."
    )


def check_input(
    *,
    application: str,
    type: str,
    fields: dict | None,
    secrets: dict | None,
    partial: bool = False,
) -> CheckedInput:
    """Check fields and secrets against the connector's declaration (``flows.credentials``,
    shared with the on-premise agent); ValidationError names each problem by field (one
    message per field). With ``partial``, absent fields keep their stored values. Messages
    never contain the values."""
    try:
        return flow_credentials.check_input(
            application=application, type=type, fields=fields, secrets=secrets, partial=partial
        )
    except flow_credentials.CredentialInputError as error:
        if list(error.problems) == ["__all__"]:
            raise ValidationError(error.problems["__all__"]) from None
        raise ValidationError(error.problems) from None


def _collect(errors: dict[str, list[str]], check) -> Any:
    """Run ``check``; add its per-field ValidationError to ``errors`` instead of raising, so
    one answer lists every problem. An error about the input as a whole is raised as is."""
    try:
        return check()
    except ValidationError as error:
        if not hasattr(error, "error_dict"):
            raise
        for name, problems in error.message_dict.items():
            errors.setdefault(name, []).extend(problems)
        return None


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
    validate_later: bool = True,
) -> Credential:
    """Store a new credential with its secrets encrypted; status starts ``unvalidated``.

    A worker validates it right after the commit, unless ``validate_later`` is False: the
    page then validates it at once (:func:`validate_after_save`) to say what it found.

    Raises ``PermissionDenied`` for a role that may not change anything, and
    ``ValidationError`` naming every problem by field; nothing is stored then.
    """
    actor = as_actor(actor)
    actor.require(Perm.CHANGE)
    declarations.credential_type(application, type)  # unknown application or type: 400
    errors: dict[str, list[str]] = {}
    name, name_problem = _name_problem(organization, application, name)
    if name_problem:
        errors["name"] = [name_problem]
    checked = _collect(
        errors,
        lambda: check_input(application=application, type=type, fields=fields, secrets=secrets),
    )
    if errors:
        raise ValidationError(errors)
    credential = Credential(
        organization=organization,
        application=application,
        type=type,
        name=name,
        fields=checked.fields,
        created_by=actor.user,
    )
    seal_secrets(credential, checked.secrets, active_data_key(organization))
    _save_named(credential)
    record_event(credential, CredentialEvent.Action.CREATED, actor=actor)
    if validate_later:
        _validate_after_commit(credential)
    return credential


def _save_named(credential: Credential) -> None:
    """Save; a concurrent request that took the same name first is a ValidationError."""
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError:
        raise ValidationError(
            {"name": [_duplicate_message(credential.application, credential.name)]}
        ) from None


@transaction.atomic
def update_credential(
    organization: Organization,
    *,
    actor: Actor | Membership,
    credential_id: int,
    name: str | None = None,
    fields: dict | None = None,
    secrets: dict | None = None,
    validate_later: bool = True,
) -> Credential:
    """Rename, change non-secret fields, or replace secrets (``validate_later`` as for
    :func:`create_credential`).

    A stored secret is never read back to the caller, and not even decrypted when it is
    replaced: a secret that no longer decrypts can always be replaced. Replacing a secret or
    changing a field resets the status to ``unvalidated``.
    """
    actor = as_actor(actor)
    credential = access_credential_by_id(organization, credential_id, for_update=True)
    actor.require(Perm.CHANGE)
    errors: dict[str, list[str]] = {}
    new_name = credential.name
    if name is not None:
        new_name, name_problem = _name_problem(
            organization, credential.application, name, exclude_pk=credential.pk
        )
        if name_problem:
            errors["name"] = [name_problem]
    checked = _collect(
        errors,
        lambda: check_input(
            application=credential.application,
            type=credential.type,
            fields=fields,
            secrets=secrets,
            partial=True,
        ),
    )
    if errors:
        raise ValidationError(errors)
    changed = []
    if new_name != credential.name:
        credential.name = new_name
        changed.append("name")
    # A field sent empty that was never stored is no change (forms post every field).
    new_fields = {k: v for k, v in checked.fields.items() if credential.fields.get(k, "") != v}
    if new_fields:
        credential.fields = {**credential.fields, **new_fields}
        changed.append("fields")
    if checked.secrets:
        _replace_secrets(organization, credential, checked.secrets)
    if checked.secrets or "fields" in changed:
        credential.status = CredentialStatus.UNVALIDATED
        credential.status_message = ""
        credential.account = {}
    _save_named(credential)
    if checked.secrets:
        record_event(
            credential,
            CredentialEvent.Action.SECRET_REPLACED,
            actor=actor,
            fields=sorted(checked.secrets),
        )
    if changed:
        record_event(credential, CredentialEvent.Action.UPDATED, actor=actor, changed=changed)
    if (checked.secrets or "fields" in changed) and validate_later:
        _validate_after_commit(credential)
    return credential


def _validate_after_commit(credential: Credential) -> None:
    """Saving does not wait for the application: a worker validates the stored credential
    right after, so its status tells whether it works without another click. A broker
    outage only skips this; the daily re-validation comes anyway."""
    credential_id = credential.pk
    organization_id = credential.organization_id
    transaction.on_commit(
        lambda: enqueue(
            REVALIDATE_CREDENTIAL, organization_id, credential_id, "validation after saving"
        )
    )


def _replace_secrets(
    organization: Organization, credential: Credential, replacements: dict[str, str]
) -> None:
    """Encrypt ``replacements`` into ``credential`` (not saved).

    One row never mixes data keys: when the row is under an older data key than the
    organization's active one (a rotation in progress), the secrets that are kept are
    re-encrypted under the active key, which needs them decrypted; the replaced ones never
    are.
    """
    data_key = active_data_key(organization)
    kept_names = [n for n in credential.secret_values if n not in replacements]
    if credential.data_key_id == data_key.pk or not kept_names:
        if credential.data_key_id != data_key.pk:
            credential.secret_values = {}
        seal_secrets(credential, replacements, data_key)
        return
    try:
        kept = open_secrets(credential, kept_names)
    except crypto.VaultError:
        raise ValidationError({n: [CANNOT_DECRYPT] for n in kept_names}) from None
    credential.secret_values = {}
    seal_secrets(credential, {**kept, **replacements}, data_key)
    del kept


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
    application: str = "",
    type: str = "rest",
    fields: dict | None = None,
    secrets: dict | None = None,
    credential_id: int | None = None,
) -> ValidationOutcome:
    """The Validate button: check typed values (not saved) against the application.

    Editing a stored credential (``credential_id``; its application and type apply), secrets
    not typed anew are taken from it: that use of the stored secret is audited. Nothing is
    saved.
    """
    actor = as_actor(actor)
    actor.require(Perm.CHANGE)
    if credential_id is None:
        return _check_typed(application, type, fields or {}, secrets or {})
    credential = access_credential_by_id(organization, credential_id)
    stored_fields = {**credential.fields, **(fields or {})}
    # Only the secrets that were not typed anew are decrypted.
    needed = [n for n in credential.secret_values if n not in (secrets or {})]
    if not needed:
        return _check_typed(credential.application, credential.type, stored_fields, secrets)
    try:
        with open_credential(
            credential, purpose="Validate while editing", actor=actor, fields=needed
        ) as opened:
            stored = {name: opened.credentials.secret(name) or "" for name in needed}
            outcome = _check_typed(
                credential.application,
                credential.type,
                stored_fields,
                {**stored, **(secrets or {})},
            )
            del stored
            opened.report(ok=outcome.ok, **({"message": outcome.message} if not outcome.ok else {}))
            return outcome
    except CredentialUnavailable:
        raise ValidationError({n: [CANNOT_DECRYPT] for n in needed}) from None


def _check_typed(application: str, type: str, fields: dict, secrets: dict) -> ValidationOutcome:
    checked = check_input(application=application, type=type, fields=fields, secrets=secrets)
    return validation.validate(
        application, type=type, fields=checked.fields, secrets=checked.secrets
    )


def validate_credential(
    organization: Organization, *, actor: Actor | Membership, credential_id: int
) -> ValidationOutcome:
    """Check a stored credential against its application and record the result."""
    actor = as_actor(actor)
    credential = access_credential_by_id(organization, credential_id)
    actor.require(Perm.CHANGE)
    return _validate_and_record(credential, actor, interactive=True)


def validate_after_save(
    organization: Organization, *, actor: Actor | Membership, credential_id: int
) -> ValidationOutcome:
    """Save's second half, for the person who pressed Save: validate the stored credential
    now and record the result, so the page says what it found and the list agrees. When the
    application could not be asked (an outage), a worker tries again shortly."""
    outcome = validate_credential(organization, actor=actor, credential_id=credential_id)
    if outcome.status is None:
        transaction.on_commit(
            lambda: enqueue(REVALIDATE_CREDENTIAL, credential_id, "validation after saving")
        )
    return outcome


def revalidate(credential: Credential, *, label: str) -> ValidationOutcome:
    """Check a stored credential on the system's behalf (the periodic task)."""
    return _validate_and_record(credential, Actor.system(label), interactive=False)


def _validate_and_record(
    credential: Credential, actor: Actor, *, interactive: bool
) -> ValidationOutcome:
    # The VALIDATED entry below is this use's audit record.
    try:
        with open_credential(
            credential, purpose="validation", actor=actor, audit_as=None
        ) as opened:
            outcome = validation.validate_credentials(
                credential.application, opened.credentials, interactive=interactive
            )
    except CredentialUnavailable:
        outcome = ValidationOutcome(
            ok=False, message=CANNOT_DECRYPT, account={}, status=CredentialStatus.INVALID
        )
    now = timezone.now()
    was = credential.status
    updates = {"checked_at": now, "status_message": outcome.message}
    if outcome.status is not None:
        updates["status"] = outcome.status
    if outcome.ok:
        updates["validated_at"] = now
        updates["account"] = outcome.account
    Credential.objects.for_tenant(credential.organization_id).filter(pk=credential.pk).update(
        **updates
    )
    for key, value in updates.items():
        setattr(credential, key, value)
    record_event(
        credential,
        CredentialEvent.Action.VALIDATED,
        actor=actor,
        ok=outcome.ok,
        message=outcome.message,
    )
    if outcome.status == CredentialStatus.INVALID and was != CredentialStatus.INVALID:
        health.became_invalid(credential, outcome.message)
    return outcome


# --- Running one action now ------------------------------------------------------------------


def execute_action(
    organization: Organization,
    *,
    actor: Actor | Membership,
    application: str,
    action: str,
    credential_id: int,
    filters: list | None = None,
    document: Any = None,
    context: dict | None = None,
    limit: int | None = None,
    purpose: str = "Test step",
) -> calls.ActionOutcome:
    """Run one action of ``application`` now with a stored credential: the designer's Test
    step and the API's ``…/actions/<action>/execute``. A real call, audited on the
    credential like any use (``purpose`` says why); it never creates a run. ``context``
    is what ``{{ trigger.… }}`` / ``{{ steps.… }}`` references read (the designer's
    samples). Its answer has sensitive keys redacted, as run records do."""
    actor = as_actor(actor)
    actor.require(Perm.CHANGE)
    app = declarations.get_application(application)  # unknown application: ValidationError
    if action not in app.actions:
        raise ValidationError(
            {"action": [f"{app.display_name} has no action {action!r}; it has: "
                        f"{', '.join(app.actions)}."]}
        )  # fmt: skip
    credential = access_credential_by_id(organization, credential_id)
    if credential.application != app.name:
        raise ValidationError(
            {"credential": [f"Credential {credential.name!r} is for "
                            f"{declarations.display_name(credential.application)}, not "
                            f"{app.display_name}."]}
        )  # fmt: skip
    rows = filters or []
    if not isinstance(rows, list) or not all(
        isinstance(row, list | tuple) and len(row) == 2 and all(isinstance(v, str) for v in row)
        for row in rows
    ):
        raise ValidationError({"filters": ["Filters are a list of [key, value] text pairs."]})
    refusal = flow_definition.typed_key_refusal(app, action, rows)
    if refusal is not None:
        raise ValidationError({"filters": [refusal[1]]})
    outcome = calls.run_action(
        credential,
        action,
        filters=rows,
        context=context or {"trigger": {}, "steps": {}},
        document=document,
        limit=limit,
        purpose=purpose,
        actor=actor,
    )
    return dataclasses.replace(
        outcome, data=redact(outcome.data), items=redact(outcome.items) if outcome.items else None
    )
