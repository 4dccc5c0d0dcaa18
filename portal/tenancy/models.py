"""Organizations (the tenants), memberships with roles, invitations, and the base of every
tenant-owned model."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Organization(models.Model):
    """A tenant: a company whose credentials, processflows and runs are invisible to others."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TenantQuerySet(models.QuerySet):
    """Queries of tenant-owned rows; views reach them only through :meth:`for_tenant`."""

    def for_tenant(self, organization: Organization) -> TenantQuerySet:
        return self.filter(organization=organization)


class TenantOwnedModel(models.Model):
    """Abstract base of every model that belongs to one organization.

    There is deliberately no reverse accessor on Organization: code that wants an
    organization's rows asks ``Model.objects.for_tenant(org)``, the one scoped path.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=True
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


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
