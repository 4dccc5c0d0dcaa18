"""Webhook intake at ``/hooks/<id>/``: verify, store durably, then answer.

The order matters. The signature is checked over the raw body before anything is parsed or
stored. The event and its outbox entry are committed in one transaction, and only then does
the sender get its 2xx: an event we acknowledged is on disk, whatever happens to Redis or
the workers afterwards. If the database cannot take it, the answer is 503 and the sender
retries (Calendly retries for a day). Nothing here talks to the application's API.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from portal.processflows.models import (
    Deployment,
    Outbox,
    RejectedDelivery,
    TriggerEvent,
    TriggerType,
)
from portal.processflows.outbox import publish
from portal.processflows.signing import signing_key
from portal.vault import applications

logger = logging.getLogger(__name__)

# Headers worth keeping with an event (for support and replay); never Authorization/Cookie.
KEPT_HEADERS = ("content-type", "user-agent", "calendly-webhook-signature", "x-request-id")


def _answer(status: int, message: str, **extra) -> JsonResponse:
    body = {"status": "accepted" if status < 300 else "rejected", "message": message, **extra}
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = "30"
    return response


def _kept_headers(request) -> dict[str, str]:
    return {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers}


def _reject(
    deployment: Deployment, request, *, status: int, reason: str, size: int
) -> JsonResponse:
    RejectedDelivery.objects.create(
        organization_id=deployment.organization_id,
        deployment=deployment,
        reason=reason[:200],
        status_code=status,
        size=size,
        headers=_kept_headers(request),
    )
    if status == 401:
        Deployment.objects.filter(pk=deployment.pk).update(
            bad_signature_count=F("bad_signature_count") + 1,
            last_bad_signature_at=timezone.now(),
        )
    return _answer(status, reason)


def _verify(deployment: Deployment, application: str, request, raw: bytes):
    """Check the signature with this deployment's key, then (only if that fails) with the
    keys of deployments of the same flow retired within the grace period: during a redeploy
    the application may still deliver through the old subscription, and those events must
    not be lost. None when no key is known at all."""
    verification = None
    for candidate in _key_holders(deployment):
        key = signing_key(candidate)
        if key is None:
            continue
        verification = applications.verify_delivery(
            application,
            headers=request.headers,
            raw_body=raw,
            signing_key=key,
            tolerance=settings.PORTAL_WEBHOOK_TOLERANCE_SECONDS,
        )
        del key
        if verification.ok:
            return verification
    return verification


def _key_holders(deployment: Deployment):
    yield deployment
    grace = timezone.now() - timedelta(seconds=settings.PORTAL_WEBHOOK_KEY_GRACE_SECONDS)
    yield from (
        Deployment.objects.filter(
            processflow_id=deployment.processflow_id,
            state=Deployment.State.UNDEPLOYED,
            undeployed_at__gte=grace,
        )
        .exclude(signing_key_ciphertext="")
        .select_related("signing_data_key")
        .order_by("-undeployed_at")[:3]
    )


@csrf_exempt
def receive(request, hook_id: str):
    """Accept one webhook delivery for the deployed processflow behind ``hook_id``."""
    if request.method != "POST":
        return _answer(405, "Webhook deliveries are POST requests.")
    try:
        return _receive(request, hook_id)
    except DatabaseError as error:
        logger.error("intake unavailable, asking the sender to retry: %s", type(error).__name__)
        return _answer(503, "Temporarily unable to store events; retry later.")


def _receive(request, hook_id: str):
    deployment = (
        Deployment.objects.select_related("processflow", "version", "signing_data_key")
        .filter(
            processflow__hook_id=hook_id,
            state=Deployment.State.ACTIVE,
            processflow__trigger_type=TriggerType.WEBHOOK,
        )
        .first()
    )
    if deployment is None:
        return _answer(404, "No deployed processflow has this URL.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raw = None
    if raw is None or len(raw) > settings.PORTAL_WEBHOOK_MAX_BYTES:
        size = int(request.META.get("CONTENT_LENGTH") or 0)
        return _reject(
            deployment, request, status=413, size=size,
            reason=f"Body larger than {settings.PORTAL_WEBHOOK_MAX_BYTES} bytes.",
        )  # fmt: skip

    application = deployment.version.definition["trigger"]["application"]
    verification = _verify(deployment, application, request, raw)
    if verification is None:
        return _reject(
            deployment, request, status=401, size=len(raw),
            reason="This processflow's subscription is not registered yet.",
        )  # fmt: skip
    if not verification.ok:
        return _reject(deployment, request, status=401, size=len(raw), reason=verification.reason)

    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _reject(deployment, request, status=400, size=len(raw), reason="Body is not UTF-8.")
    except ValueError:
        return _reject(deployment, request, status=400, size=len(raw), reason="Body is not JSON.")
    if not isinstance(payload, dict):
        return _reject(
            deployment, request, status=400, size=len(raw), reason="Body is not a JSON object."
        )

    dedupe_key = applications.dedupe_key(application, raw)
    try:
        with transaction.atomic():
            event = TriggerEvent.objects.create(
                organization_id=deployment.organization_id,
                deployment=deployment,
                source=TriggerEvent.Source.WEBHOOK,
                event_name=applications.event_name(application, payload),
                dedupe_key=dedupe_key,
                headers=_kept_headers(request),
                body=raw,
            )
            Outbox.objects.create(event=event)
            transaction.on_commit(lambda: publish([event.pk]))
    except IntegrityError:
        # The sender retried a delivery we already hold: stored once, processed once.
        TriggerEvent.objects.filter(deployment=deployment, dedupe_key=dedupe_key).update(
            duplicates=F("duplicates") + 1
        )
        return _answer(200, "Duplicate delivery; already accepted.")
    return _answer(202, "Accepted.", event=event.pk)
