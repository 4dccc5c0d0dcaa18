"""Puts the current organization and the switcher's list into every template."""

from portal.tenancy.permissions import Perm, has_perm
from portal.tenancy.selectors import memberships_of_user


def tenancy(request):
    membership = getattr(request, "membership", None)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "organization": getattr(request, "organization", None),
        "membership": membership,
        "can_change": membership is not None and has_perm(membership, Perm.CHANGE),
        "can_manage_members": membership is not None and has_perm(membership, Perm.MANAGE_MEMBERS),
        "can_manage_agents": membership is not None and has_perm(membership, Perm.MANAGE_AGENTS),
        "switcher_memberships": memberships_of_user(user),
    }
