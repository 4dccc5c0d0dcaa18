"""Reads of alert rules and of what was sent, tenant-scoped (another tenant's rule: 404)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from portal.notifications.models import Alert, AlertRule
from portal.tenancy.models import Organization


def list_rules(organization: Organization) -> QuerySet[AlertRule]:
    return AlertRule.objects.for_tenant(organization)


def access_rule_by_id(organization: Organization, rule_id) -> AlertRule:
    return get_object_or_404(AlertRule.objects.for_tenant(organization), pk=rule_id)


def list_alerts(organization: Organization) -> QuerySet[Alert]:
    """Alerts raised, newest first, with their deliveries."""
    return Alert.objects.for_tenant(organization).prefetch_related("deliveries")
