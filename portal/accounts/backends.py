"""The one place where a password is checked: Django's ModelBackend behind the login throttle.

Why an authentication backend: every door that takes a password calls Django's
``authenticate()`` (the portal's login page, the admin's login form, DRF's basic or session
login should anyone enable them, a password change form re-checking the current password),
and ``authenticate()`` can only reach a password through the configured backends. With this
the only backend, no login door, present or future, can check a password without going
through the same per-account and per-client lockout, and failures at any door count for all.
A throttle in one view would protect that view only; the admin's login page was such a gap.

The portal's pages add only the presentation on top (a 429 with Retry-After and a message);
the admin sends people to the portal's login page, so it has one login page and one lockout.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from portal.accounts import throttling

#: The path of this backend, for code that logs a user in without a password check.
BACKEND = f"{__name__}.ThrottledModelBackend"


class ThrottledModelBackend(ModelBackend):
    """ModelBackend whose every password check first reserves an attempt atomically.

    A refused reservation raises ``PermissionDenied``, which makes ``authenticate()`` stop and
    answer "no user" without checking the password; the request is marked so the page can
    tell a lockout from a wrong password (``throttling.locked_seconds``).
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        if throttling.begin_attempt(request, email=username):
            raise PermissionDenied("too many failed login attempts")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            throttling.attempt_succeeded(request, email=username)
        return user
