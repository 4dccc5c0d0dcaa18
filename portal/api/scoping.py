"""Tenant scoping for API views: the API's side of ``portal.tenancy.access``."""

from __future__ import annotations

from portal.api.models import ApiToken
from portal.tenancy.access import access_membership, authorize
from portal.tenancy.permissions import Perm


class TenantScopedMixin:
    """Resolve ``self.membership`` / ``self.organization`` from the URL's ``org`` slug.

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
        token = request.auth if isinstance(request.auth, ApiToken) else None
        self.membership = access_membership(
            request.user,
            kwargs.get("org", ""),
            token_organization_id=token.organization_id if token else None,
        )
        self.organization = self.membership.organization
        authorize(self.membership, method=request.method, write_perm=self.get_write_permission())

    @property
    def is_schema_generation(self) -> bool:
        """drf-spectacular instantiates views without a request to read their types."""
        return getattr(self, "swagger_fake_view", False)
