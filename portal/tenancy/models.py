"""Organizations (the tenants), memberships with roles, invitations, and the base of every
tenant-owned model."""

from __future__ import annotations

from contextvars import ContextVar

from django.conf import settings
from django.db import models
from django.db.models import OuterRef


class Organization(models.Model):
    """A tenant: a company whose credentials, processflows and runs are invisible to others."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TenantScopeError(Exception):
    """A query of tenant-owned rows that says neither whose rows nor why it needs everyone's."""


#: Set while Django checks a tenant-owned row's unique fields and constraints: those checks
#: must see every organization's rows (a token hash or a hook id is unique across them all),
#: and they only ever ask ``exists()``.
_checking_uniqueness: ContextVar[bool] = ContextVar("checking_uniqueness", default=False)


class TenantQuerySet(models.QuerySet):
    """Queries of tenant-owned rows, which refuse to run until they say whose rows they want.

    A query is *scoped* once it went through :meth:`for_tenant` (an organization or its id),
    through :meth:`unscoped` (system work across organizations, with its reason), or came
    from a related manager of a model instance (``flow.deployments.all()``, prefetches),
    which was itself reached through a scoped path. Building and filtering is always
    allowed; running an unscoped query (iterating, ``get``, ``count``, ``exists``,
    ``update``, ``delete``, ``aggregate``...) raises :class:`TenantScopeError`. Inserting
    (``create``, ``bulk_create``) needs no scope: each row carries its organization.

    Django's own machinery is unaffected: saving, foreign-key access and deletion cascades
    go through the plain base manager.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tenant_scope: str | None = None

    def _clone(self):
        clone = super()._clone()
        clone._tenant_scope = self._tenant_scope
        return clone

    # --- The two ways to say whose rows --------------------------------------------------

    def for_tenant(self, organization: Organization | int | OuterRef) -> TenantQuerySet:
        """Only ``organization``'s rows: an Organization, its id, or (in a subquery) an
        ``OuterRef`` to the outer row's organization."""
        if isinstance(organization, Organization):
            if organization.pk is None:
                raise TenantScopeError("for_tenant() needs a saved organization.")
            lookup = {"organization_id": organization.pk}
        elif isinstance(organization, int) and not isinstance(organization, bool):
            lookup = {"organization_id": organization}
        elif hasattr(organization, "resolve_expression"):
            lookup = {"organization": organization}
        else:
            raise TenantScopeError(
                f"for_tenant() needs an organization or its id, not {organization!r}."
            )
        clone = self.filter(**lookup)
        clone._tenant_scope = "tenant"
        return clone

    def unscoped(self, reason: str) -> TenantQuerySet:
        """Every organization's rows, for system work that spans them (intake by hook id,
        the sweeper, key rotation...). ``reason`` says why, in a few words; the places that
        may do this are listed in ``tests/tenancy/test_escape_hatch.py``."""
        if not isinstance(reason, str) or not reason.strip():
            raise TenantScopeError(
                f"{self.model.__name__}.objects.unscoped() needs a reason: say which system "
                "work reads every organization's rows."
            )
        clone = self._chain()
        clone._tenant_scope = f"unscoped: {reason.strip()}"
        return clone

    # --- The refusal -----------------------------------------------------------------------

    @property
    def is_tenant_scoped(self) -> bool:
        """Whether this query may run (see the class's docstring)."""
        return (
            self._tenant_scope is not None
            or "instance" in self._hints  # a related manager's or a prefetch's query
            or self.query.is_empty()  # ``none()``: nothing to read
        )

    def _require_scope(self, operation: str) -> None:
        if not self.is_tenant_scoped:
            name = self.model.__name__
            raise TenantScopeError(
                f"{name}.objects needs .for_tenant(organization) before {operation} "
                f'(or .unscoped("reason") for system work across organizations).'
            )

    def _fetch_all(self):
        if self._result_cache is None:
            self._require_scope("it reads rows")
        super()._fetch_all()

    def iterator(self, chunk_size=None):
        self._require_scope("iterator()")
        return super().iterator(chunk_size)

    async def aiterator(self, chunk_size=2000):
        self._require_scope("aiterator()")
        async for item in super().aiterator(chunk_size):
            yield item

    def count(self):
        if self._result_cache is None:
            self._require_scope("count()")
        return super().count()

    def exists(self):
        if self._result_cache is None and not _checking_uniqueness.get():
            self._require_scope("exists()")
        return super().exists()

    def aggregate(self, *args, **kwargs):
        self._require_scope("aggregate()")
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs):
        self._require_scope("update()")
        return super().update(**kwargs)

    def delete(self):
        self._require_scope("delete()")
        return super().delete()

    def bulk_update(self, objs, fields, batch_size=None):
        # Refused before Django opens its transaction, which the refusal would spoil.
        self._require_scope("bulk_update()")
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def explain(self, *, format=None, **options):
        self._require_scope("explain()")
        return super().explain(format=format, **options)

    def raw(self, raw_query, params=(), translations=None, using=None):
        # Raw SQL ignores for_tenant()'s filter: only system work may use it.
        if not (self._tenant_scope or "").startswith("unscoped:"):
            raise TenantScopeError(
                f"{self.model.__name__}.objects.raw() ignores for_tenant(); raw SQL on tenant "
                'tables is system work: .unscoped("reason").raw(...).'
            )
        return super().raw(raw_query, params, translations, using)

    def _combined(self, result, others):
        # ``a | b`` of a scoped and an unscoped query would read the unscoped one's rows.
        if isinstance(result, TenantQuerySet) and result is not self:
            everyone = [self, *others]
            if all(isinstance(q, TenantQuerySet) and q.is_tenant_scoped for q in everyone):
                result._tenant_scope = result._tenant_scope or "combined"
            else:
                result._tenant_scope = None
                result._hints = {k: v for k, v in result._hints.items() if k != "instance"}
        return result

    def __or__(self, other):
        return self._combined(super().__or__(other), [other])

    def __xor__(self, other):
        return self._combined(super().__xor__(other), [other])

    def _combinator_query(self, combinator, *other_qs, all=False):
        return self._combined(super()._combinator_query(combinator, *other_qs, all=all), other_qs)

    def __repr__(self):
        if not self.is_tenant_scoped and self._result_cache is None:
            return f"<{type(self).__name__} of {self.model.__name__}, not scoped to a tenant>"
        return super().__repr__()


class TenantOwnedModel(models.Model):
    """Abstract base of every model that belongs to one organization.

    Its default manager is a :class:`TenantQuerySet`: ``Model.objects.for_tenant(org)`` is
    the one scoped path, ``Model.objects.unscoped("reason")`` the one escape hatch. There is
    deliberately no reverse accessor on Organization.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=True
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True

    # Django checks unique fields and constraints through the default manager; such a check
    # must see every organization's rows, and it only asks whether one exists.
    def validate_unique(self, exclude=None):
        token = _checking_uniqueness.set(True)
        try:
            super().validate_unique(exclude=exclude)
        finally:
            _checking_uniqueness.reset(token)

    def validate_constraints(self, exclude=None):
        token = _checking_uniqueness.set(True)
        try:
            super().validate_constraints(exclude=exclude)
        finally:
            _checking_uniqueness.reset(token)


class Role(models.TextChoices):
    """Roles in ascending order of power; see ``portal.tenancy.permissions``."""

    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


class Membership(TenantOwnedModel):
    """A user's role in one organization. A user may belong to several organizations."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Invitation(TenantOwnedModel):
    """An invitation to join an organization, redeemable once through a secret link.

    Only a SHA-256 hash of the link's token is stored: a database leak does not let anyone
    join an organization.
    """

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.organization}"

    @property
    def is_pending(self) -> bool:
        from django.utils import timezone

        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )


class IdempotencyRecord(TenantOwnedModel):
    """The answer to a create sent with an ``Idempotency-Key``, kept per organization and
    key until ``expires_at``: the same request sent again gets the same answer instead of
    creating twice. ``status_code`` is null while the first request is still running."""

    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} of organization {self.organization_id}"
