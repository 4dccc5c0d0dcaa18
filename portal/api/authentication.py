"""``Authorization: Bearer <token>`` authentication for personal API tokens."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from portal.api import services
from portal.api.models import ApiToken
from portal.tenancy.models import Membership
from portal.tenancy.services import hash_token

# Writing last_used_at on every request would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class BearerTokenAuthentication(BaseAuthentication):
    """Authenticate with a personal API token sent as ``Authorization: Bearer <token>``.

    A request without an Authorization header falls through to session authentication.
    A header that is present but malformed, or a token that is unknown, expired or revoked,
    fails with 401 and a message saying which.
    """

    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword:
            raise exceptions.AuthenticationFailed(
                "Unsupported Authorization scheme: send 'Authorization: Bearer <token>'."
            )
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: send 'Authorization: Bearer <token>'."
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed token.") from None
        member_since = (
            Membership.objects.for_tenant(OuterRef("organization_id"))
            .filter(user_id=OuterRef("user_id"))
            .values("created_at")[:1]
        )
        token = (
            ApiToken.objects.unscoped("a bearer token finds its organization by its hash")
            .select_related("user", "organization")
            .annotate(member_since=Subquery(member_since))
            .filter(token_hash=hash_token(raw))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is None:
            # Removal and deactivation revoke tokens as they happen; this catches any door
            # that bypassed that (raw SQL, a restored backup), so an old token never acts
            # under a later membership.
            if token.member_since is None or token.member_since > token.created_at:
                self._revoke(token, services.MEMBERSHIP_ENDED)
            elif not token.user.is_active:
                self._revoke(token, services.USER_DEACTIVATED)
        if token.revoked_at is not None:
            reason = f" ({token.revoked_reason})" if token.revoked_reason else ""
            raise exceptions.AuthenticationFailed(f"This token was revoked{reason}.")
        now = timezone.now()
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed(
                f"This token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC."
            )
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.for_tenant(token.organization_id).filter(pk=token.pk).update(
                last_used_at=now
            )
        return token.user, token

    @staticmethod
    def _revoke(token: ApiToken, reason: str) -> None:
        token.revoked_at = timezone.now()
        token.revoked_reason = reason
        ApiToken.objects.for_tenant(token.organization_id).filter(
            pk=token.pk, revoked_at__isnull=True
        ).update(revoked_at=token.revoked_at, revoked_reason=reason)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
