"""Sending one alert delivery: an e-mail through Django's mail, or a signed POST to an
outbound webhook that must pass the same network guard as REST destinations."""

from __future__ import annotations

import json
import logging
import time

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from connectors.errors import UnsafeDestination
from connectors.netguard import GuardedAdapter, NetworkPolicy
from portal.notifications import signing
from portal.notifications.models import AlertDelivery, Channel

logger = logging.getLogger(__name__)
TIMEOUT = (5, 15)


def network_policy() -> NetworkPolicy:
    """The policy REST destinations obey (``PORTAL_ALLOWED_PRIVATE_HOSTS``)."""
    return NetworkPolicy.from_entries(settings.PORTAL_ALLOWED_PRIVATE_HOSTS)


def check_url(url: str) -> None:
    """Raise ``UnsafeDestination`` for a URL an outbound webhook may not call."""
    network_policy().check_url(url, label="The webhook URL")


def payload(delivery: AlertDelivery) -> dict:
    alert = delivery.alert
    link = f"{settings.PORTAL_BASE_URL.rstrip('/')}{alert.link}" if alert.link else None
    return {
        "type": f"alert.{alert.kind}",
        "timestamp": alert.created_at.isoformat(),
        "data": {
            "organization": alert.organization.slug,
            "kind": alert.kind,
            "subject": alert.subject,
            "title": alert.title,
            "message": alert.message,
            "link": link,
        },
    }


def _post(delivery: AlertDelivery, body: bytes) -> int:
    rule = delivery.rule
    secret = signing.rule_secret(rule, purpose="signing an alert webhook")
    if secret is None:
        raise ValueError("The rule's signing secret cannot be decrypted; create the rule again.")
    check_url(delivery.target)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature(secret, delivery.message_id, timestamp, body),
        "user-agent": "ConnectPortal-Alerts/1",
    }
    del secret
    with requests.Session() as session:
        session.trust_env = False  # proxies would bypass the network guard
        adapter = GuardedAdapter(network_policy())
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        answer = session.post(
            delivery.target, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
        )
    return answer.status_code


def deliver(delivery_id: int) -> str | None:
    """Send a pending delivery once; its status says what happened. None if it is gone
    or was sent already (a redelivered task)."""
    delivery = (
        AlertDelivery.objects.select_related("alert__organization", "rule")
        .filter(pk=delivery_id, status=AlertDelivery.Status.PENDING)
        .first()
    )
    if delivery is None:
        return None
    delivery.attempts += 1
    body = payload(delivery)
    try:
        if delivery.channel == Channel.EMAIL:
            data = body["data"]
            text = "\n\n".join(part for part in (data["message"], data["link"] or "") if part)
            send_mail(
                f"[{data['organization']}] {data['title']}",
                text,
                settings.DEFAULT_FROM_EMAIL,
                [delivery.target],
            )
        else:
            if delivery.rule is None:
                raise ValueError("The rule was deleted.")
            raw = json.dumps(body, separators=(",", ":")).encode()
            delivery.response_status = _post(delivery, raw)
            if not 200 <= delivery.response_status < 300:
                raise ValueError(f"The webhook answered {delivery.response_status}.")
    except UnsafeDestination as error:
        delivery.status, delivery.error = AlertDelivery.Status.FAILED, str(error)
    except (requests.RequestException, OSError, ValueError) as error:
        delivery.status = AlertDelivery.Status.FAILED
        delivery.error = str(error) if isinstance(error, ValueError) else type(error).__name__
    else:
        delivery.status, delivery.error = AlertDelivery.Status.SENT, ""
        delivery.sent_at = timezone.now()
    delivery.save(update_fields=["attempts", "status", "error", "response_status", "sent_at"])
    if delivery.status == AlertDelivery.Status.FAILED:
        logger.warning("alert delivery %s failed: %s", delivery.pk, delivery.error)
    return delivery.status
