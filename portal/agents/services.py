"""Writes to agents: add one (with its one-time registration key), register it, revoke it,
groups, and what its heartbeats report. Each write from a person takes the organization
first and the acting membership; the agent's own calls take the authenticated agent."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.agents.models import Agent, AgentGroup, RegistrationKey
from portal.agents.selectors import access_agent_by_id, access_group_by_id
from portal.tenancy.models import Membership, Organization
from portal.tenancy.permissions import Perm, require_perm

KEY_PREFIX = "cpr_"
SECRET_PREFIX = "cpa_"  # noqa: S105
KEY_HOURS = 24
INVALID_KEY = "This registration key is not valid: it may have expired or been used."
_WIRE = re.compile(
    r"^(?P<org>[0-9]{1,12})\.(?P<id>[0-9]{1,12})\.(?P<random>[A-Za-z0-9_-]{20,100})$"
)
_APPLICATIONS_MAX = 200


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def parse_secret(raw: object, prefix: str) -> tuple[int, int] | None:
    """``(organization_id, row_id)`` of a ``<prefix><org>.<id>.<random>`` secret, or None."""
    if not isinstance(raw, str) or not raw.startswith(prefix):
        return None
    match = _WIRE.match(raw[len(prefix) :])
    if match is None:
        return None
    return int(match["org"]), int(match["id"])


def _name(value, what: str = "agent") -> str:
    name = (value or "").strip() if isinstance(value, str) else ""
    if not name:
        raise ValidationError({"name": [f"Give the {what} a name, e.g. the server it runs on."]})
    if len(name) > 100:
        raise ValidationError({"name": ["Keep the name under 100 characters."]})
    return name


@dataclass(frozen=True)
class IssuedKey:
    """A registration key and its secret value, which exists only in this object."""

    agent: Agent
    registration_key: RegistrationKey
    key: str


def _issue_key(agent: Agent, *, user) -> IssuedKey:
    row = RegistrationKey.objects.create(
        organization_id=agent.organization_id,
        agent=agent,
        key_hash="",
        created_by=user,
        expires_at=timezone.now() + timedelta(hours=KEY_HOURS),
    )
    raw = f"{KEY_PREFIX}{agent.organization_id}.{row.pk}.{secrets.token_urlsafe(32)}"
    RegistrationKey.objects.for_tenant(agent.organization_id).filter(pk=row.pk).update(
        key_hash=_hash(raw)
    )
    row.key_hash = _hash(raw)
    return IssuedKey(agent=agent, registration_key=row, key=raw)


def create_group(organization: Organization, *, actor: Membership, name: str) -> AgentGroup:
    """A new, empty agent group."""
    require_perm(actor, Perm.MANAGE_AGENTS)
    name = _name(name, "group")
    if AgentGroup.objects.for_tenant(organization).filter(name__iexact=name).exists():
        raise ValidationError({"name": [f"An agent group named {name!r} exists already."]})
    try:
        with transaction.atomic():
            return AgentGroup.objects.create(organization=organization, name=name)
    except IntegrityError:
        raise ValidationError(
            {"name": [f"An agent group named {name!r} exists already."]}
        ) from None


@transaction.atomic
def create_agent(
    organization: Organization,
    *,
    actor: Membership,
    name: str,
    group_id: int | None = None,
) -> IssuedKey:
    """Add an agent (in ``group_id``, or in a new group named after it: a single agent is a
    group of one) and its registration key, returned once and valid for 24 hours."""
    require_perm(actor, Perm.MANAGE_AGENTS)
    name = _name(name)
    if group_id is not None:
        group = access_group_by_id(organization, group_id)
    else:
        if AgentGroup.objects.for_tenant(organization).filter(name__iexact=name).exists():
            raise ValidationError(
                {"group": [f"A group named {name!r} exists already: choose it, or name the "
                           "agent differently."]}
            )  # fmt: skip
        group = AgentGroup.objects.create(organization=organization, name=name)
    agent = Agent.objects.create(
        organization=organization, group=group, name=name, created_by=actor.user
    )
    return _issue_key(agent, user=actor.user)


@transaction.atomic
def new_registration_key(
    organization: Organization, *, actor: Membership, agent_id: int
) -> IssuedKey:
    """A fresh registration key for an agent (to install it again, or because the first one
    expired). Earlier unused keys stop working; registering with it replaces the agent's
    secret, so the copy installed before gets 401."""
    require_perm(actor, Perm.MANAGE_AGENTS)
    agent = access_agent_by_id(organization, agent_id)
    if agent.revoked_at is not None:
        raise ValidationError("This agent was revoked; add a new one instead.")
    RegistrationKey.objects.for_tenant(organization).filter(
        agent=agent, used_at__isnull=True
    ).update(expires_at=timezone.now())
    return _issue_key(agent, user=actor.user)


@dataclass(frozen=True)
class Registered:
    """A registered agent and its secret, which exists only in this object."""

    agent: Agent
    secret: str


def _text(value, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


@transaction.atomic
def register(
    *, key: object, hostname: object = "", version: object = "", name: object = ""
) -> Registered:
    """Pair an installed agent through its one-time key; returns its secret (stored hashed).

    A key works once: the conditional UPDATE that marks it used lets only one of two
    concurrent registrations through. Any problem is the same one message.
    """
    parsed = parse_secret(key, KEY_PREFIX)
    if parsed is None:
        raise ValidationError(INVALID_KEY)
    organization_id, key_id = parsed
    now = timezone.now()
    keys = RegistrationKey.objects.for_tenant(organization_id)
    row = keys.filter(pk=key_id).select_related("agent").first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(key)):
        raise ValidationError(INVALID_KEY)
    taken = keys.filter(
        pk=row.pk, used_at__isnull=True, expires_at__gt=now, agent__revoked_at__isnull=True
    ).update(used_at=now)
    if not taken:
        raise ValidationError(INVALID_KEY)
    agent = row.agent
    secret = f"{SECRET_PREFIX}{organization_id}.{agent.pk}.{secrets.token_urlsafe(32)}"
    agent.secret_hash = _hash(secret)
    agent.registered_at = now
    agent.last_seen_at = now
    agent.hostname = _text(hostname, 255)
    agent.version = _text(version, 50)
    if not agent.name:
        agent.name = _text(name, 100) or agent.hostname or f"agent {agent.pk}"
    agent.save()
    return Registered(agent=Agent.objects.for_tenant(organization_id).select_related(
        "group", "organization").get(pk=agent.pk), secret=secret)  # fmt: skip


def authenticate(raw: object) -> Agent | None:
    """The agent whose secret ``raw`` is, or None (unknown, malformed or revoked)."""
    parsed = parse_secret(raw, SECRET_PREFIX)
    if parsed is None:
        return None
    organization_id, agent_id = parsed
    agent = (
        Agent.objects.for_tenant(organization_id)
        .select_related("group", "organization")
        .filter(pk=agent_id, revoked_at__isnull=True)
        .first()
    )
    if agent is None or not agent.secret_hash:
        return None
    if not hmac.compare_digest(agent.secret_hash, _hash(raw)):
        return None
    return agent


@transaction.atomic
def revoke_agent(organization: Organization, *, actor: Membership, agent_id: int) -> Agent:
    """Revoke an agent: its next request gets 401; runs it holds are offered to the rest of
    its group at once (its leases can no longer be renewed or finished)."""
    from portal.processflows.models import Run, RunStatus

    require_perm(actor, Perm.MANAGE_AGENTS)
    agent = access_agent_by_id(organization, agent_id)
    if agent.revoked_at is None:
        now = timezone.now()
        agent.revoked_at = now
        agent.secret_hash = ""
        agent.save(update_fields=["revoked_at", "secret_hash"])
        RegistrationKey.objects.for_tenant(organization).filter(
            agent=agent, used_at__isnull=True
        ).update(expires_at=now)
        Run.objects.for_tenant(organization).filter(agent=agent, status=RunStatus.RUNNING).update(
            status=RunStatus.RETRYING,
            lease_owner="",
            lease_expires_at=None,
            next_attempt_at=now,
            error="Its agent was revoked; the run resumes on another agent of the group.",
        )
    return agent


@transaction.atomic
def move_agent(
    organization: Organization, *, actor: Membership, agent_id: int, group_id: int
) -> Agent:
    """Put an agent in another group of the organization."""
    require_perm(actor, Perm.MANAGE_AGENTS)
    agent = access_agent_by_id(organization, agent_id)
    agent.group = access_group_by_id(organization, group_id)
    agent.save(update_fields=["group"])
    return agent


def _applications(value) -> list[dict]:
    if not isinstance(value, list):
        raise ValidationError(
            {"applications": ["A list of {application, name, valid, validated_at}."]}
        )
    cleaned = []
    for entry in value[:_APPLICATIONS_MAX]:
        if not isinstance(entry, dict):
            raise ValidationError({"applications": ["Each entry is an object."]})
        application = _text(entry.get("application"), 50)
        name = _text(entry.get("name"), 100)
        if not application or not name:
            raise ValidationError(
                {"applications": ["Each entry names its application and credential."]}
            )
        validated_at = entry.get("validated_at")
        cleaned.append(
            {
                "application": application,
                "name": name,
                "valid": entry.get("valid") is True,
                "validated_at": validated_at if isinstance(validated_at, str) else None,
            }
        )
    return cleaned


def heartbeat(agent: Agent, *, version: object = None, applications: object = None) -> None:
    """Record that the agent is alive, its version, and what it has configured (names and
    validity only: whatever else an entry carries is dropped)."""
    fields: dict = {"last_seen_at": timezone.now()}
    if isinstance(version, str):
        fields["version"] = _text(version, 50)
    if applications is not None:
        fields["applications"] = _applications(applications)
    Agent.objects.for_tenant(agent.organization_id).filter(pk=agent.pk).update(**fields)
    for name, value in fields.items():
        setattr(agent, name, value)


def seen(agent: Agent) -> None:
    """A long-poll counts as a heartbeat (written at most every few seconds)."""
    now = timezone.now()
    if agent.last_seen_at is None or now - agent.last_seen_at > timedelta(seconds=5):
        Agent.objects.for_tenant(agent.organization_id).filter(pk=agent.pk).update(last_seen_at=now)
        agent.last_seen_at = now


def request_applications(group: AgentGroup, applications: set[str]) -> None:
    """Remember applications a definition asked of ``group`` that its agents lack."""
    wanted = sorted(set(group.requested_applications or []) | applications)
    if wanted != sorted(group.requested_applications or []):
        AgentGroup.objects.for_tenant(group.organization_id).filter(pk=group.pk).update(
            requested_applications=wanted
        )
        group.requested_applications = wanted
