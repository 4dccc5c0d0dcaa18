"""What tenancy tells the apps that depend on it, without knowing them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent (``sender=Membership``, ``membership=``, ``reason=``) just before a membership is
#: deleted by ``remove_member``; ``reason`` is one of the two below. The API revokes the
#: member's tokens for that organization, giving the reason.
membership_ending = Signal()

MEMBER_LEFT = "left the organization"
MEMBER_REMOVED = "removed from the organization"
