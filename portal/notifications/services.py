"""Writes to alert rules: create (a webhook rule's secret is returned once), enable or
disable, delete. Each takes the organization first and the acting membership."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from connectors.errors import UnsafeDestination
from portal.notifications import delivery, signing
from portal.notifications.models import AlertKind, AlertRule, Channel
from portal.tenancy.models import Membership, Organization
from portal.tenancy.permissions import Perm
from portal.vault.audit import Actor, as_actor


@dataclass
class CreatedRule:
    rule: AlertRule
    #: A webhook rule's signing secret: shown once, never again.
    secret: str | None = field(default=None, repr=False)


def _require_change(actor) -> Actor:
    actor = as_actor(actor)
    actor.require(Perm.CHANGE)
    return actor


@transaction.atomic
def create_rule(
    organization: Organization,
    *,
    actor: Actor | Membership,
    name: str,
    channel: str,
    kinds: list[str],
    email: str = "",
    url: str = "",
) -> CreatedRule:
    """Create an alert rule; ValidationError names each problem by field."""
    actor = _require_change(actor)
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = ["Give the rule a name, e.g. 'On-call e-mail'."]
    elif len(name) > 100:
        errors["name"] = ["Keep the name under 100 characters."]
    if channel not in Channel.values:
        errors["channel"] = [f"Choose one of: {', '.join(Channel.values)}."]
    kinds = list(dict.fromkeys(kinds or []))
    unknown = [k for k in kinds if k not in AlertKind.values]
    if not kinds or unknown:
        errors["kinds"] = [f"Choose at least one of: {', '.join(AlertKind.values)}."]
    email, url = (email or "").strip(), (url or "").strip()
    if channel == Channel.EMAIL:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = ["Give the e-mail address to send alerts to."]
        url = ""
    elif channel == Channel.WEBHOOK:
        try:
            delivery.check_url(url)
        except UnsafeDestination as error:
            errors["url"] = [str(error)]
        if len(url) > 500:
            errors["url"] = ["Keep the URL under 500 characters."]
        email = ""
    if errors:
        raise ValidationError(errors)
    rule = AlertRule(
        organization=organization,
        name=name,
        channel=channel,
        kinds=kinds,
        email=email,
        url=url,
        uid=uuid.uuid4(),
        created_by=actor.user,
    )
    secret = signing.new_secret(rule) if channel == Channel.WEBHOOK else None
    rule.save()
    return CreatedRule(rule=rule, secret=secret)


def _rule(organization: Organization, rule_id) -> AlertRule:
    from portal.notifications.selectors import access_rule_by_id

    return access_rule_by_id(organization, rule_id)


def set_rule_enabled(
    organization: Organization, *, actor: Actor | Membership, rule_id: int, enabled: bool
) -> AlertRule:
    rule = _rule(organization, rule_id)
    _require_change(actor)
    rule.enabled = enabled
    rule.save(update_fields=["enabled"])
    return rule


def delete_rule(organization: Organization, *, actor: Actor | Membership, rule_id: int) -> None:
    rule = _rule(organization, rule_id)
    _require_change(actor)
    rule.delete()
