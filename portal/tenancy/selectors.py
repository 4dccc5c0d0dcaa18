"""Reads of tenancy data. Each takes the organization first; another tenant's row is a 404."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.tenancy.models import Invitation, Membership, Organization


def memberships_of_user(user) -> QuerySet[Membership]:
    """The user's memberships, for the organization switcher."""
    return user.memberships.select_related("organization")


def list_memberships(organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(organization).select_related("user")


def access_membership_by_id(organization: Organization, membership_id: int) -> Membership:
    return get_object_or_404(list_memberships(organization), pk=membership_id)


def list_pending_invitations(organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.for_tenant(organization).filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def access_invitation_by_id(organization: Organization, invitation_id: int) -> Invitation:
    return get_object_or_404(Invitation.objects.for_tenant(organization), pk=invitation_id)
