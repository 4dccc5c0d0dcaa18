"""Tokens end with what they act through, whichever door ended it (the portal, the API, the
admin site, a shell): a membership deleted or a user deactivated revokes their tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from portal.api import services
from portal.tenancy.models import Membership
from portal.tenancy.signals import membership_ending


@receiver(membership_ending, dispatch_uid="api.revoke_tokens_of_leaving_member")
def revoke_tokens_of_leaving_member(sender, membership: Membership, reason: str, **kwargs) -> None:
    services.revoke_member_tokens(membership.organization_id, user=membership.user, reason=reason)


@receiver(post_delete, sender=Membership, dispatch_uid="api.revoke_tokens_of_ended_membership")
def revoke_tokens_of_ended_membership(sender, instance: Membership, **kwargs) -> None:
    # ``membership_ending`` has revoked them with a precise reason; this catches the rest.
    services.revoke_member_tokens(
        instance.organization_id, user=instance.user_id, reason=services.MEMBERSHIP_ENDED
    )


@receiver(post_save, sender=get_user_model(), dispatch_uid="api.revoke_tokens_of_inactive_user")
def revoke_tokens_of_inactive_user(sender, instance, update_fields=None, **kwargs) -> None:
    if instance.is_active or (update_fields is not None and "is_active" not in update_fields):
        return
    services.revoke_user_tokens(user=instance, reason=services.USER_DEACTIVATED)
