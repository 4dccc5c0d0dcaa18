"""The single permission choke point, used by HTML views and API views alike.

A permission is granted by role; roles are ordered viewer < member < admin < owner.
"""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import PermissionDenied

from portal.tenancy.models import Membership, Role


class Perm(StrEnum):
    VIEW = "view"
    """See the organization's objects. Every role."""
    CHANGE = "change"
    """Create, edit, run and delete credentials, processflows and runs. Members and up."""
    MANAGE_MEMBERS = "manage_members"
    """Invite people, change roles below owner, remove non-owners. Admins and owners."""
    MANAGE_AGENTS = "manage_agents"
    """Add, revoke and group on-premise agents, make registration keys. Admins and owners."""
    MANAGE_OWNERS = "manage_owners"
    """Grant or take the owner role, remove owners. Owners only."""


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}
_MINIMUM_ROLE = {
    Perm.VIEW: Role.VIEWER,
    Perm.CHANGE: Role.MEMBER,
    Perm.MANAGE_MEMBERS: Role.ADMIN,
    Perm.MANAGE_AGENTS: Role.ADMIN,
    Perm.MANAGE_OWNERS: Role.OWNER,
}
_DESCRIPTION = {
    Perm.VIEW: "view this organization",
    Perm.CHANGE: "make changes in this organization",
    Perm.MANAGE_MEMBERS: "manage this organization's members",
    Perm.MANAGE_AGENTS: "manage this organization's agents",
    Perm.MANAGE_OWNERS: "manage this organization's owners",
}


def role_rank(role: str) -> int:
    return _RANK[Role(role)]


def has_perm(membership: Membership, perm: Perm) -> bool:
    """Whether the member's role grants ``perm``."""
    return role_rank(membership.role) >= _RANK[_MINIMUM_ROLE[perm]]


def require_perm(membership: Membership, perm: Perm) -> None:
    """Raise ``PermissionDenied`` with a message naming the role, unless ``perm`` is granted."""
    if not has_perm(membership, perm):
        raise PermissionDenied(
            f"Your role ({membership.get_role_display().lower()}) does not allow you to "
            f"{_DESCRIPTION[perm]}."
        )
