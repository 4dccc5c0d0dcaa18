"""Raising alerts: the one call the rest of the portal makes when something needs attention
(a run failed for good, a subscription is disabled or failing, a credential became invalid).

An alert is recorded and one delivery per matching rule is queued (by task name, after the
commit). At most one alert per subject and kind per quiet period
(``PORTAL_ALERT_QUIET_SECONDS``): a flow that fails a hundred times an hour alerts once,
and the alert counts the repeats.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.notifications.models import Alert, AlertDelivery, AlertRule
from portal.queues import enqueue
from portal.tenancy.models import Organization

logger = logging.getLogger(__name__)

#: The Celery task (``portal/notifications/tasks.py``) that sends one delivery.
DELIVER_ALERT = "portal.maintenance.deliver_alert"


def quiet_period() -> timedelta:
    return timedelta(seconds=settings.PORTAL_ALERT_QUIET_SECONDS)


def raise_alert(
    organization_id: int,
    *,
    kind: str,
    subject: str,
    title: str,
    message: str = "",
    link: str = "",
) -> Alert | None:
    """Record an alert and queue its deliveries; None when one of the same kind and
    subject was raised within the quiet period (its ``repeats`` grows instead).

    Never raises: an alert that cannot be recorded must not fail the run, the validation
    or the delivery that noticed the trouble (it is logged).
    """
    try:
        return _raise(organization_id, kind, subject, title, message, link)
    except Exception:
        logger.exception("alert %s about %s could not be recorded", kind, subject)
        return None


def _raise(organization_id, kind, subject, title, message, link) -> Alert | None:
    with transaction.atomic():
        # One alert per subject and kind per quiet period, also when two workers notice
        # the same trouble at once: raising is serialised per organization (alerts are rare).
        organization = Organization.objects.select_for_update().get(pk=organization_id)
        since = timezone.now() - quiet_period()
        recent = (
            Alert.objects.for_tenant(organization)
            .filter(kind=kind, subject=subject, created_at__gte=since)
            .first()
        )
        if recent is not None:
            Alert.objects.for_tenant(organization).filter(pk=recent.pk).update(
                repeats=recent.repeats + 1
            )
            return None
        alert = Alert.objects.create(
            organization=organization,
            kind=kind,
            subject=subject,
            title=title[:200],
            message=message,
            link=link[:300],
        )
        rules = [
            rule
            for rule in AlertRule.objects.for_tenant(organization).filter(enabled=True)
            if kind in (rule.kinds or [])
        ]
        deliveries = [
            AlertDelivery.objects.create(
                alert=alert,
                rule=rule,
                channel=rule.channel,
                target=rule.target,
                message_id=f"msg_{uuid.uuid4().hex}",
            )
            for rule in rules
        ]
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: [enqueue(DELIVER_ALERT, pk) for pk in ids])
    return alert
