"""Creating and revoking personal API tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.api.models import ApiToken
from portal.tenancy.models import Organization
from portal.tenancy.services import hash_token

TOKEN_PREFIX = "cpt_"  # noqa: S105 - a marker that lets secret scanners spot leaked tokens

# Why a token was revoked other than by its holder (shown beside it and in the 401).
MEMBERSHIP_ENDED = "membership ended"
USER_DEACTIVATED = "user deactivated"


@dataclass(frozen=True)
class IssuedToken:
    """A new token and its secret value, which exists only in this object."""

    token: ApiToken
    secret: str


def create_token(
    organization: Organization, *, user, name: str, expires_in_days: int
) -> IssuedToken:
    """Create a token for ``user`` in ``organization``; the secret is returned once."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the token a name, e.g. the script that uses it."]})
    if len(name) > 100:
        raise ValidationError({"name": ["Keep the name under 100 characters."]})
    maximum = settings.PORTAL_API_TOKEN_MAX_DAYS
    if not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= maximum:
        raise ValidationError(
            {"expires_in_days": [f"Choose an expiry between 1 and {maximum} days."]}
        )
    if (
        ApiToken.objects.for_tenant(organization)
        .filter(user=user, name=name, revoked_at__isnull=True)
        .exists()
    ):
        raise ValidationError({"name": [f"You already have a token named {name!r}."]})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        organization=organization,
        user=user,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_token(secret),
        expires_at=timezone.now() + timedelta(days=expires_in_days),
    )
    return IssuedToken(token=token, secret=secret)


def list_tokens(organization: Organization, *, user) -> QuerySet[ApiToken]:
    """The user's own tokens in this organization (nobody sees another person's tokens)."""
    return ApiToken.objects.for_tenant(organization).filter(user=user)


def access_token_by_id(organization: Organization, *, user, token_id: int) -> ApiToken:
    return get_object_or_404(list_tokens(organization, user=user), pk=token_id)


def revoke_token(organization: Organization, *, user, token_id: int) -> ApiToken:
    """Revoke one of the user's tokens; it stops working on its next request."""
    token = access_token_by_id(organization, user=user, token_id=token_id)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def revoke_member_tokens(organization: Organization | int, *, user, reason: str) -> int:
    """Revoke every token ``user`` holds in ``organization``, for good: a membership that
    ends takes its tokens with it, and a later membership starts without them."""
    return (
        ApiToken.objects.for_tenant(organization)
        .filter(user=user, revoked_at__isnull=True)
        .update(revoked_at=timezone.now(), revoked_reason=reason)
    )


def revoke_user_tokens(*, user, reason: str) -> int:
    """Revoke every token ``user`` holds in any organization (the user was deactivated)."""
    return user.api_tokens.filter(revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )
