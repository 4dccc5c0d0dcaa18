"""How a request finds its tenant: the one place, for HTML views and API views alike.

Every tenant URL carries the organization's slug (``/o/<org>/...`` in the portal,
``/api/v1/organizations/<org>/...`` in the API). :func:`access_membership` turns it into the
caller's membership, answering 404 the same way for an organization that does not exist and
one the caller does not belong to, so that neither existence nor names leak across tenants.
Pages get it through :func:`tenant_view`, API views through :class:`TenantScopedMixin`; both
then read and write only through ``Model.objects.for_tenant(request's organization)``.
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
        membership = user.memberships.select_related("organization", "user").get(
            organization__slug=org_slug
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


def token_organization_id(request) -> int | None:
    """The organization an API token was created in, or None for a session (or no) login.

    Whatever authenticated the request put the token in ``request.auth``; a token carries the
    ``organization_id`` it is bound to, which is all the tenant check needs to know of it.
    """
    return getattr(getattr(request, "auth", None), "organization_id", None)


class TenantScopedMixin:
    """For DRF views: resolve ``self.membership`` / ``self.organization`` from the URL's
    ``org`` slug, the API's side of :func:`tenant_view`.

    Runs after DRF has authenticated the request, so a token's user is known; a token only
    reaches the organization it was created in. Reads need ``VIEW``; writes need
    ``write_permission`` (override per view, or :meth:`get_write_permission` per action).
    Objects are looked up through ``Model.objects.for_tenant(self.organization)`` only.
    """

    write_permission: Perm = Perm.CHANGE
    # Tenant-owned objects are named by their numeric id: any other text in the id's place
    # matches no route and answers 404 (in the API's format) before a view or the database
    # sees it, for every viewset and action alike. The converter is for path()-style routers
    # (and makes the schema say "integer"); the regex for regex routers.
    lookup_value_converter = "int"
    lookup_value_regex = r"[0-9]+"

    def get_write_permission(self) -> Perm:
        return self.write_permission

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.membership = access_membership(
            request.user,
            kwargs.get("org", ""),
            token_organization_id=token_organization_id(request),
        )
        self.organization = self.membership.organization
        authorize(self.membership, method=request.method, write_perm=self.get_write_permission())

    @property
    def is_schema_generation(self) -> bool:
        """drf-spectacular instantiates views without a request to read their types."""
        return getattr(self, "swagger_fake_view", False)
