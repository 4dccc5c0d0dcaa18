"""``Idempotency-Key`` on creates: the same request sent again with the same key gets the
stored answer (``Idempotent-Replayed: true``) instead of creating a second object.

Answers are kept per organization and key for ``PORTAL_IDEMPOTENCY_HOURS``. A key reused
with a different request is refused (422); a key whose first request is still running
answers 409. Failures (an exception, a 5xx) are not kept, so the client may retry with the
same key. Decorate a viewset's create-like method (one that has ``self.organization``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from portal.tenancy.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY = 255


class KeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was used for a different request; use a new key for a new one."
    )
    default_code = "idempotency_key_reused"


class KeyInProgress(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still being processed; retry later."
    default_code = "idempotency_key_in_progress"


def _fingerprint(request) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.body or b"")
    return digest.hexdigest()


def idempotent(view=None, *, secret_fields: tuple[str, ...] = ()):
    """Honour ``Idempotency-Key`` on this create. ``secret_fields`` of the answer are not
    kept (a secret shown once stays shown once): a replay answers them as null."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, request, *args, **kwargs):
            key = request.headers.get(HEADER, "")
            if not key:
                return method(self, request, *args, **kwargs)
            if len(key) > MAX_KEY or not key.isprintable():
                raise ValidationError({HEADER: [f"Use at most {MAX_KEY} printable characters."]})
            fingerprint = _fingerprint(request)  # read before the view consumes the body
            organization = self.organization
            now = timezone.now()
            records = IdempotencyRecord.objects.for_tenant(organization)
            records.filter(key=key, expires_at__lte=now).delete()
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        organization=organization,
                        key=key,
                        fingerprint=fingerprint,
                        expires_at=now + timedelta(hours=settings.PORTAL_IDEMPOTENCY_HOURS),
                    )
            except IntegrityError:
                existing = records.filter(key=key).first()
                if existing is None:  # expired and removed meanwhile
                    raise KeyInProgress() from None
                if existing.fingerprint != fingerprint:
                    raise KeyReused() from None
                if existing.status_code is None:
                    raise KeyInProgress() from None
                return Response(
                    existing.body,
                    status=existing.status_code,
                    headers={"Idempotent-Replayed": "true"},
                )
            try:
                response = method(self, request, *args, **kwargs)
            except BaseException:
                record.delete()
                raise
            if response.status_code >= 500:
                record.delete()
                return response
            body = json.loads(JSONRenderer().render(response.data)) if response.data else None
            if secret_fields and isinstance(body, dict):
                body = {k: (None if k in secret_fields else v) for k, v in body.items()}
            record.status_code = response.status_code
            record.body = body
            record.save(update_fields=["status_code", "body"])
            return response

        return wrapper

    return decorate(view) if view is not None else decorate
