"""Thin Celery task: send one alert delivery by id."""

from __future__ import annotations

from celery import shared_task

from portal.notifications import delivery
from portal.notifications.alerts import DELIVER_ALERT


@shared_task(name=DELIVER_ALERT)
def deliver_alert(delivery_id: int) -> str | None:
    return delivery.deliver(delivery_id)
