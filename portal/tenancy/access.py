"""How a request finds its tenant: the one place, for HTML views and API views alike.

Every tenant URL carries the organization's slug (``/o/<org>/...`` in the portal,
``/api/v1/organizations/<org>/...`` in the API). :func:`access_membership` turns it into the
caller's membership, answering 404 the same way for an organization that does not exist and
one the caller does not belong to, so that neither existence nor names leak across tenants.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest

from portal.tenancy.models import Membership
from portal.tenancy.permissions import Perm, require_perm

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_KEY = "organization"


def access_membership(user, org_slug: str, *, token_organization_id: int | None = None):
    """The caller's membership in the organization ``org_slug``, or ``Http404``.

    ``token_organization_id`` restricts an API token to the organization it was created in:
    any other organization answers 404 even if the token's user belongs to it.
    """
    if user is None or not user.is_authenticated:
        raise Http404("No such organization.")
    try:
        membership = Membership.objects.select_related("organization", "user").get(
            organization__slug=org_slug, user=user
        )
    except Membership.DoesNotExist:
        raise Http404("No such organization.") from None
    if token_organization_id is not None and membership.organization_id != token_organization_id:
        raise Http404("No such organization.")
    return membership


def authorize(membership: Membership, *, method: str, write_perm: Perm) -> None:
    """Reads need ``VIEW``; anything else needs ``write_perm``."""
    require_perm(membership, Perm.VIEW if method.upper() in SAFE_METHODS else write_perm)


def tenant_view(view: Callable | None = None, *, write_perm: Perm = Perm.CHANGE):
    """Decorate a portal view whose URL has an ``org`` slug.

    Sets ``request.membership`` and ``request.organization``, remembers the organization in
    the session for the next visit, and checks the role: GET needs ``VIEW``, POST needs
    ``write_perm``. The ``org`` keyword is consumed here; the view does not receive it.
    """

    def decorate(func: Callable) -> Callable:
        @login_required
        @functools.wraps(func)
        def wrapper(request: HttpRequest, *args, org: str, **kwargs):
            membership = access_membership(request.user, org)
            authorize(membership, method=request.method, write_perm=write_perm)
            request.membership = membership
            request.organization = membership.organization
            if request.session.get(SESSION_KEY) != membership.organization.slug:
                request.session[SESSION_KEY] = membership.organization.slug
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
