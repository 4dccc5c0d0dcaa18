"""Webhook intake at ``/hooks/<id>/``: verify, store durably, then answer.

The order matters. The signature is checked over the raw body before anything is parsed or
stored. The event and its outbox entry are committed in one transaction, and only then does
the sender get its 2xx: an event we acknowledged is on disk, whatever happens to Redis or
the workers afterwards. If the database cannot take it, the answer is 503 and the sender
retries (applications retry for hours or days). Nothing here talks to the application's API, nor to
the broker: the relay (``manage.py relay_outbox``) publishes stored events, the sweeper
catches what it misses, so a broker outage costs intake nothing.

The two database operations of an accepted delivery (finding the deployment, storing the
event with its outbox entry) are in ``eventstore``, written for this hot path.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, transaction
from django.db.models import F
from django.http import JsonResponse, UnreadablePostError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from portal.applications import deliveries
from portal.processflows import alerting, eventstore, rejections
from portal.processflows.models import Deployment, RejectedDelivery
from portal.processflows.signing import signing_key

logger = logging.getLogger(__name__)

# Deeper documents are refused: runs walk them recursively, and no sender nests this deep.
MAX_DEPTH = 64
# Characters PostgreSQL cannot store in text or jsonb: NUL and unpaired surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _answer(status: int, message: str, **extra) -> JsonResponse:
    body = {"status": "accepted" if status < 300 else "rejected", "message": message, **extra}
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = "30"
    return response


def _kept_headers(request, application: str) -> dict[str, str]:
    """Headers worth keeping with an event (for support and replay), as the application
    declares them; never Authorization or Cookie."""
    kept = deliveries.kept_headers(application)
    return {name: request.headers[name] for name in kept if name in request.headers}


def _reject(
    hook: eventstore.DeployedHook, request, *, status: int, reason: str, size: int
) -> JsonResponse:
    deployment = hook.deployment
    # Anyone who knows the URL can send these: only so many a minute are written down.
    admission, minute = rejections.admit(deployment.pk)
    if admission is rejections.Admission.COUNT:
        return _answer(status, reason)
    if admission is rejections.Admission.STAND_FOR_THE_REST:
        cap = settings.PORTAL_REJECTED_DELIVERIES_PER_MINUTE
        RejectedDelivery.objects.create(
            organization_id=deployment.organization_id,
            deployment=deployment,
            reason=f"More than {cap} refused in this minute: the rest are counted, not stored.",
            status_code=status,
            size=0,
            unstored_minute=minute,
        )
        return _answer(status, reason)
    with transaction.atomic():
        RejectedDelivery.objects.create(
            organization_id=deployment.organization_id,
            deployment=deployment,
            reason=reason[:200],
            status_code=status,
            size=size,
            headers=_kept_headers(request, hook.application),
        )
        if status == 401:
            Deployment.objects.for_tenant(deployment.organization_id).filter(
                pk=deployment.pk
            ).update(
                bad_signature_count=F("bad_signature_count") + 1,
                last_bad_signature_at=timezone.now(),
            )
    if status == 401:
        alerting.check_verification(deployment)
    return _answer(status, reason)


def _verify(deployment: Deployment, application: str, request, raw: bytes):
    """Check the signature with this deployment's key, then (only if that fails) with the
    keys of deployments of the same flow retired within the grace period: during a redeploy
    the application may still deliver through the old subscription, and those events must
    not be lost. None when no key is known at all; on failure, the current key's reason."""
    first = None
    for candidate in _key_holders(deployment):
        key = signing_key(candidate, purpose="verifying webhook deliveries")
        if key is None:
            continue
        verification = deliveries.verify_delivery(
            application,
            headers=request.headers,
            raw_body=raw,
            signing_key=key,
            tolerance=settings.PORTAL_WEBHOOK_TOLERANCE_SECONDS,
        )
        del key
        if verification.ok:
            return verification
        first = first or verification
    return first


def _key_holders(deployment: Deployment):
    yield deployment
    grace = timezone.now() - timedelta(seconds=settings.PORTAL_WEBHOOK_KEY_GRACE_SECONDS)
    yield from (
        Deployment.objects.for_tenant(deployment.organization_id)
        .filter(
            processflow_id=deployment.processflow_id,
            state=Deployment.State.UNDEPLOYED,
            undeployed_at__gte=grace,
        )
        .exclude(signing_key_ciphertext="")
        .select_related("signing_data_key")
        .order_by("-undeployed_at")[:3]
    )


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse(raw: bytes) -> tuple[dict | None, str]:
    """The body as a JSON object, or None and the reason it is refused.

    Beyond being JSON, a stored event must be storable and processable wherever it goes
    later (jsonb run inputs, recursive redaction): a verified body that would fail there
    would be accepted now and fail forever after, so it is refused here instead.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "Body is not UTF-8."
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None, "Body is not JSON."
    if not isinstance(payload, dict):
        return None, "Body is not a JSON object."
    # The walk below is only needed when it can find something: NUL and surrogates can only
    # arrive escaped (strict JSON refuses raw control characters, strict UTF-8 refuses
    # encoded surrogates), and nesting deeper than the limit needs that many brackets.
    escaped = "\\u" in text
    if escaped or raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        problem = _unstorable(payload, characters=escaped)
        if problem:
            return None, problem
    return payload, ""


def _unstorable(payload: dict, *, characters: bool) -> str:
    """Why a parsed body cannot be stored (nesting; NUL or unpaired surrogates), or ""."""
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"Body is nested deeper than {MAX_DEPTH} levels."
        if isinstance(value, dict):
            if characters and any(_UNSTORABLE.search(key) for key in value):
                return "Body holds a NUL character or an unpaired surrogate."
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif characters and isinstance(value, str) and _UNSTORABLE.search(value):
            return "Body holds a NUL character or an unpaired surrogate."
    return ""


@csrf_exempt
def receive(request, hook_id: str):
    """Accept one webhook delivery for the deployed processflow behind ``hook_id``."""
    if request.method != "POST":
        response = _answer(405, "Webhook deliveries are POST requests.")
        response["Allow"] = "POST"
        return response
    try:
        return _receive(request, hook_id)
    except DatabaseError as error:
        logger.error("intake unavailable, asking the sender to retry: %s", type(error).__name__)
        return _answer(503, "Temporarily unable to store events; retry later.")


def _receive(request, hook_id: str):
    hook = eventstore.find_deployment(hook_id)
    if hook is None:
        return _answer(404, "No deployed processflow has this URL.")
    limit = settings.PORTAL_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    # A body declared too large is refused without reading it.
    raw = None
    if declared <= limit:
        try:
            raw = request.body
        except RequestDataTooBig:
            raw = None
        except UnreadablePostError:
            return _answer(400, "The body could not be read completely.")
    if raw is None or len(raw) > limit:
        return _reject(
            hook, request, status=413, size=max(declared, len(raw or b"")),
            reason=f"Body larger than {limit} bytes.",
        )  # fmt: skip
    answer = _accept(hook, request, raw)
    if answer is None:
        # What this process remembered was outdated (a redeploy, an undeploy): ask again.
        hook = eventstore.find_deployment(hook_id, fresh=True)
        if hook is None:
            return _answer(404, "No deployed processflow has this URL.")
        answer = _accept(hook, request, raw)
    return answer


def _accept(hook: eventstore.DeployedHook, request, raw: bytes):
    """Verify, check and store one delivery; None when a remembered ``hook`` may be the
    reason it failed (then the caller retries with a fresh one)."""
    deployment, application = hook.deployment, hook.application
    verification = _verify(deployment, application, request, raw)
    if verification is None or not verification.ok:
        if hook.cached:
            return None
        reason = (
            verification.reason
            if verification is not None
            else "This processflow's subscription is not registered yet."
        )
        return _reject(hook, request, status=401, size=len(raw), reason=reason)

    payload, problem = _parse(raw)
    if payload is None:
        return _reject(hook, request, status=400, size=len(raw), reason=problem)

    # The parsed payload, not the raw body: the same key, without parsing the body again.
    stored = eventstore.store_delivery(
        deployment,
        dedupe_key=deliveries.dedupe_key(application, payload, request.headers),
        event_name=deliveries.event_name(application, payload, request.headers),
        headers=_kept_headers(request, application),
        body=deliveries.stored_body(application, raw, payload),
    )
    if not stored.live:
        return None if hook.cached else _answer(404, "No deployed processflow has this URL.")
    if stored.event_id is None:
        # The sender retried a delivery we already hold: stored once, processed once.
        return _answer(200, "Duplicate delivery; already accepted.")
    logger.info("webhook delivery accepted", extra={"event_id": stored.event_id})
    return _answer(202, "Accepted.", event=stored.event_id)
