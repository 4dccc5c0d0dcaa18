"""The agent's services: connections (credentials kept on this agent), validation, the
registration and the applications the portal asks for. Pages, the CLI and the work loop
all call these.

Secrets are checked (``flows.credentials``, the portal's own rules), sealed under the key
file with each ciphertext bound to its row and field (``flows.envelope``), and opened only
for one call. They never reach a log, a page, an exception text or the portal.
"""

from __future__ import annotations

import base64
import functools
import hmac
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

import connectors
import flows
from agent import config
from agent.local.models import Application, Connection, Registration
from flows import credentials as flow_credentials
from flows import definition, envelope
from flows import validation as flow_validation
from flows.validation import ValidationOutcome

NAME_MAX = 100
CANNOT_DECRYPT = (
    "This connection's secrets cannot be decrypted with this agent's key file (agent.key "
    "was replaced, or the store was copied from another agent). Enter the secret again."
)


class InputProblem(ValueError):
    """Input a person must correct; ``problems`` maps a form field to its messages."""

    def __init__(self, problems: dict[str, list[str]]):
        super().__init__("; ".join(m for ms in problems.values() for m in ms))
        self.problems = problems


@functools.cache
def _key() -> bytes:
    return config.store_key()


def _binding(kind: str, uid: object, field: str) -> str:
    return f"connect-agent:v1:{kind}={uid}:field={field}"


def seal(value: str, *, kind: str, uid: object, field: str) -> str:
    """``value`` encrypted under the key file, bound to ``kind``/``uid`` and ``field``."""
    sealed = envelope.seal_value(_key(), value, binding=_binding(kind, uid, field))
    return base64.b64encode(sealed).decode()


def unseal(text: str, *, kind: str, uid: object, field: str) -> str:
    """The value :func:`seal` sealed for the same binding; ``envelope.DecryptionError``
    otherwise (another row, another field, another key)."""
    sealed = base64.b64decode(text)
    return envelope.open_value(_key(), sealed, binding=_binding(kind, uid, field))


# --- Connections -------------------------------------------------------------------------


def connection_type(application: str, type: str) -> connectors.CredentialType:
    """The declared credential type; InputProblem when there is no such thing."""
    try:
        return flow_credentials.credential_type(application, type)
    except flow_credentials.CredentialInputError as error:
        raise InputProblem(error.problems) from None


def _check_name(application: str, name, *, exclude: int | None = None) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InputProblem({"name": ["Give the connection a name, e.g. 'main'."]})
    if len(name) > NAME_MAX:
        raise InputProblem({"name": [f"Keep the name under {NAME_MAX} characters."]})
    clash = Connection.objects.filter(application=application, name__iexact=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    existing = clash.values_list("name", flat=True).first()
    if existing is not None:
        display = definition.application(application).display_name
        raise InputProblem(
            {
                "name": [
                    f"A {display} connection named {existing!r} already exists; names differ "
                    "by more than upper and lower case. Choose another name."
                ]
            }
        )
    return name


def _checked(application: str, type: str, fields, secrets, *, partial=False):
    try:
        return flow_credentials.check_input(
            application=application, type=type, fields=fields, secrets=secrets, partial=partial
        )
    except flow_credentials.CredentialInputError as error:
        raise InputProblem(error.problems) from None


@transaction.atomic
def save_connection(
    *,
    application: str,
    type: str = "rest",
    name: str,
    fields: Mapping[str, str],
    secrets: Mapping[str, str],
    connection_id: int | None = None,
) -> Connection:
    """Create a connection, or update ``connection_id`` (secrets not typed again are kept).

    Raises InputProblem naming each problem by field."""
    connection_type(application, type)
    problems: dict[str, list[str]] = {}
    connection = None
    if connection_id is not None:
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        application, type = connection.application, connection.type
    try:
        name = _check_name(application, name, exclude=connection_id)
    except InputProblem as error:
        problems.update(error.problems)
    try:
        checked = _checked(application, type, fields, secrets, partial=connection is not None)
    except InputProblem as error:
        problems.update(error.problems)
        checked = None
    if problems:
        raise InputProblem(problems)
    if connection is None:
        connection = Connection(application=application, type=type)
    secrets_changed = bool(checked.secrets) or checked.fields != {
        k: v for k, v in connection.fields.items() if k in checked.fields
    }
    connection.name = name
    connection.fields = {**connection.fields, **checked.fields}
    sealed = dict(connection.sealed)
    for field, value in checked.secrets.items():
        sealed[field] = seal(value, kind="connection", uid=connection.uid, field=field)
    connection.sealed = sealed
    if secrets_changed:
        connection.status = Connection.Status.UNVALIDATED
        connection.status_message = ""
        connection.validated_at = None
    try:
        with transaction.atomic():
            connection.save()
    except IntegrityError:  # two saves of one name at once: the second reads like a clash
        raise InputProblem({"name": ["A connection with this name was just saved."]}) from None
    return connection


def delete_connection(connection_id: int) -> None:
    Connection.objects.filter(pk=connection_id).delete()


@dataclass
class Opened:
    """A connection opened for one call: the connector's credentials, and the plaintexts
    (only so that what is recorded can be cleaned of them)."""

    credentials: connectors.Credentials
    secret_values: frozenset[str]


def open_connection(connection: Connection) -> Opened:
    """Decrypt ``connection``'s secrets; ``flows.CredentialUnavailable`` when they cannot
    be (another key file, a ciphertext moved between rows)."""
    plain = {}
    for field, text in connection.sealed.items():
        try:
            plain[field] = unseal(text, kind="connection", uid=connection.uid, field=field)
        except (envelope.VaultError, ValueError):
            raise flows.CredentialUnavailable(CANNOT_DECRYPT) from None
    return Opened(
        credentials=connectors.Credentials(
            type=connection.type,
            fields=dict(connection.fields),
            secrets=plain,
            key=f"agent-connection:{connection.uid}",
        ),
        secret_values=frozenset(plain.values()),
    )


def find_connection(application: str | None, name: object) -> Connection | None:
    """The connection a step names (by application and name, case-insensitive), of an
    application enabled in the Settings panel (a disabled one's connections are kept but
    not used, as the portal is told)."""
    if not isinstance(name, str) or not name.strip():
        return None
    rows = Connection.objects.filter(
        name__iexact=name.strip(),
        application__in=Application.objects.filter(enabled=True).values("name"),
    )
    if application:
        rows = rows.filter(application=application)
    return rows.first()


def runtime(app: connectors.Connector, *, interactive: bool = False) -> connectors.Runtime:
    """How the agent calls ``app``: the connector's defaults, its own rate budget and
    cache in this process, and the private hosts this agent may reach
    (``CONNECT_AGENT_ALLOWED_PRIVATE_HOSTS``)."""
    hosts = os.environ.get("CONNECT_AGENT_ALLOWED_PRIVATE_HOSTS", "")
    return connectors.Runtime(
        allowed_private_hosts=frozenset(h.strip() for h in hosts.split(",") if h.strip()),
        read_timeout=10.0 if interactive else 30.0,
        max_retries=1 if interactive else connectors.Runtime.max_retries,
        fingerprint_key=_fingerprint_key(),
    )


@functools.cache
def _fingerprint_key() -> bytes:
    return hmac.new(_key(), b"connect-agent:fingerprint:v1", "sha256").digest()


def validate_typed(
    *, application: str, type: str, fields: Mapping[str, str], secrets: Mapping[str, str],
    connection_id: int | None = None,
) -> ValidationOutcome:  # fmt: skip
    """The Validate button: check typed values (nothing saved). Editing a connection,
    secrets left empty are taken from it. InputProblem for input to correct."""
    stored: dict[str, str] = {}
    if connection_id is not None:
        connection = Connection.objects.get(pk=connection_id)
        application, type = connection.application, connection.type
        missing = {n: t for n, t in connection.sealed.items() if not secrets.get(n)}
        if missing:
            try:
                opened = open_connection(connection)
            except flows.CredentialUnavailable as error:
                raise InputProblem({n: [str(error)] for n in missing}) from None
            stored = {n: opened.credentials.secret(n) or "" for n in missing}
        fields = {**connection.fields, **{k: v for k, v in fields.items() if v}}
    connection_type(application, type)
    checked = _checked(application, type, dict(fields), {**stored, **secrets})
    app = definition.application(application)
    credentials = connectors.Credentials(
        type=type, fields=checked.fields, secrets=checked.secrets, key="unsaved"
    )
    return flow_validation.validate(app, credentials, runtime=runtime(app, interactive=True))


def validate_connection(connection: Connection, *, interactive: bool = True) -> ValidationOutcome:
    """Check a stored connection against its application and record the result (an
    outage leaves the status as it was)."""
    app = definition.application(connection.application)
    try:
        opened = open_connection(connection)
    except flows.CredentialUnavailable as error:
        outcome = ValidationOutcome(
            ok=False, message=str(error), account={}, status=flow_validation.INVALID
        )
    else:
        outcome = flow_validation.validate(
            app, opened.credentials, runtime=runtime(app, interactive=interactive)
        )
    if outcome.status is not None:
        Connection.objects.filter(pk=connection.pk).update(
            status=outcome.status,
            status_message=outcome.message,
            account=outcome.account,
            validated_at=timezone.now(),
        )
    return outcome


def configured_applications() -> list[dict]:
    """What the heartbeat tells the portal: names and validity only."""
    return [
        {
            "application": c.application,
            "name": c.name,
            "valid": c.status == Connection.Status.VALID,
            "validated_at": c.validated_at.isoformat() if c.validated_at else None,
        }
        for c in Connection.objects.filter(
            application__in=Application.objects.filter(enabled=True).values("name")
        )
    ]


# --- Applications (Settings panel) ---------------------------------------------------------


def offer_applications(answer: list[dict]) -> None:
    """Store the applications the portal says this agent's flows use (heartbeat answer).
    New ones start disabled: a person enables them in the Settings panel."""
    names = []
    for item in answer:
        name = str(item.get("application") or "")
        if not name:
            continue
        names.append(name)
        title = str(item.get("title") or name)
        Application.objects.update_or_create(name=name, defaults={"title": title, "offered": True})
    Application.objects.exclude(name__in=names).update(offered=False)


def set_enabled(enabled: set[str]) -> None:
    """The Settings panel's checkboxes."""
    Application.objects.filter(name__in=enabled).update(enabled=True)
    Application.objects.exclude(name__in=enabled).update(enabled=False)


# --- Registration ------------------------------------------------------------------------------


def registration() -> Registration | None:
    return Registration.objects.first()


@transaction.atomic
def save_registration(*, portal_url: str, answer: dict, secret: str) -> Registration:
    """Keep the portal's registration answer; the agent secret only sealed."""
    agent = answer.get("agent") or {}
    group = agent.get("group") or {}
    organization = agent.get("organization") or {}
    Registration.objects.all().delete()
    row = Registration(
        pk=1,
        portal_url=portal_url.rstrip("/"),
        agent_id=int(agent.get("id") or 0),
        name=str(agent.get("name") or ""),
        group_id=group.get("id"),
        group_name=str(group.get("name") or ""),
        organization_slug=str(organization.get("slug") or ""),
        organization_name=str(organization.get("name") or ""),
    )
    row.sealed_secret = seal(secret, kind="registration", uid=1, field="secret")
    row.save()
    return row


def agent_secret(row: Registration) -> str:
    return unseal(row.sealed_secret, kind="registration", uid=1, field="secret")


@contextmanager
def closing_connections() -> Iterator[None]:
    """For threads of the work loop: give back the thread's database connection."""
    from django.db import connection

    try:
        yield
    finally:
        connection.close()
