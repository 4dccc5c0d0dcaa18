"""``Authorization: Bearer <token>`` authentication for personal API tokens."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from portal.api.models import ApiToken
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
        token = (
            ApiToken.objects.select_related("user", "organization")
            .filter(token_hash=hash_token(raw))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        now = timezone.now()
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed(
                f"This token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC."
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This token's user is disabled.")
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
