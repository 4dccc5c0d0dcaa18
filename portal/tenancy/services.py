"""Writes to tenancy data. Each takes the organization first and the acting membership, and
checks the actor's role itself, so the portal's pages and the API cannot disagree."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.tenancy import signals
from portal.tenancy.models import Invitation, Membership, Organization, Role
from portal.tenancy.permissions import Perm, has_perm, require_perm


def hash_token(raw: str) -> str:
    """Tokens are random and long, so a plain SHA-256 is a sound one-way store."""
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def create_organization(*, name: str, owner, slug: str = "") -> Organization:
    """Create an organization with ``owner`` as its first owner."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["An organization needs a name."]})
    slug = slugify(slug or name)[:50]
    if not slug:
        raise ValidationError({"slug": ["Choose a slug made of letters, digits and dashes."]})
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": [f"The slug {slug!r} is taken."]})
    organization = Organization.objects.create(name=name, slug=slug)
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    return organization


def _check_role_assignable(actor: Membership, role: str) -> Role:
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(
            {"role": [f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."]}
        ) from None
    require_perm(actor, Perm.MANAGE_MEMBERS)
    if role == Role.OWNER:
        require_perm(actor, Perm.MANAGE_OWNERS)
    return role


@dataclass(frozen=True)
class IssuedInvitation:
    """An invitation and its link; the link is shown once and never stored."""

    invitation: Invitation
    url: str


@transaction.atomic
def invite_member(
    organization: Organization, *, actor: Membership, email: str, role: str = Role.MEMBER
) -> IssuedInvitation:
    """Invite ``email`` with ``role``; replaces a pending invitation to the same address.

    The link is e-mailed (console backend by default) and returned for the inviter to share.
    """
    role = _check_role_assignable(actor, role)
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": ["Enter a valid e-mail address."]}) from None
    if Membership.objects.for_tenant(organization).filter(user__email__iexact=email).exists():
        raise ValidationError({"email": [f"{email} is already a member of {organization}."]})
    now = timezone.now()
    Invitation.objects.for_tenant(organization).filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    raw = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=hash_token(raw),
        invited_by=actor.user,
        expires_at=now + timedelta(days=settings.PORTAL_INVITATION_DAYS),
    )
    url = f"{settings.PORTAL_BASE_URL}/invitations/{raw}/"
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You are invited to {organization.name} on Connect Portal",
            message=(
                f"{actor.user.display_name} invited you to join {organization.name} as "
                f"{role.label.lower()}.\n\nAccept the invitation: {url}\n\n"
                f"The link expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
            ),
            from_email=None,
            recipient_list=[email],
        )
    )
    return IssuedInvitation(invitation=invitation, url=url)


def find_pending_invitation(raw_token: str) -> Invitation | None:
    """The pending invitation behind a link, or None (unknown, used, revoked or expired)."""
    invitation = (
        Invitation.objects.unscoped("an invitation link finds its organization by its hash")
        .select_related("organization")
        .filter(token_hash=hash_token(raw_token or ""))
        .first()
    )
    return invitation if invitation is not None and invitation.is_pending else None


@transaction.atomic
def accept_invitation(
    *, raw_token: str, user=None, name: str = "", password: str = ""
) -> Membership:
    """Redeem an invitation link.

    A logged-in ``user`` must be the invited address. Without one, a new account is created
    for the invited address with ``name`` and ``password``.
    """
    invitation = find_pending_invitation(raw_token)
    if invitation is None:
        raise ValidationError("This invitation link is invalid, used, revoked or expired.")
    invitation = (
        Invitation.objects.for_tenant(invitation.organization_id)
        .select_for_update()
        .get(pk=invitation.pk)
    )
    if not invitation.is_pending:
        raise ValidationError("This invitation link is invalid, used, revoked or expired.")
    User = get_user_model()
    if user is not None and user.is_authenticated:
        if user.email.lower() != invitation.email.lower():
            raise ValidationError(
                f"This invitation is for {invitation.email}; you are logged in as {user.email}."
            )
    else:
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise ValidationError(
                f"An account for {invitation.email} exists: log in first, then open the link."
            )
        candidate = User(email=invitation.email, name=name.strip())
        validate_password(password, user=candidate)
        user = User.objects.create_user(
            email=invitation.email, password=password, name=name.strip()
        )
    membership, _ = user.memberships.get_or_create(
        organization=invitation.organization, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    return membership


def revoke_invitation(organization: Organization, *, actor: Membership, invitation_id: int) -> None:
    """Make a pending invitation's link useless."""
    from portal.tenancy.selectors import access_invitation_by_id

    require_perm(actor, Perm.MANAGE_MEMBERS)
    invitation = access_invitation_by_id(organization, invitation_id)
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])


def _owners(organization: Organization):
    return Membership.objects.for_tenant(organization).filter(role=Role.OWNER)


def _lock_memberships(organization: Organization) -> None:
    # Serialises concurrent role changes and removals in one organization, so two owners
    # demoting each other at once cannot leave it without an owner.
    list(Membership.objects.for_tenant(organization).select_for_update().values_list("pk"))


@transaction.atomic
def change_role(
    organization: Organization, *, actor: Membership, membership_id: int, role: str
) -> Membership:
    """Give a member another role. Admins manage roles below owner; owners manage all.

    The last owner cannot be demoted.
    """
    from portal.tenancy.selectors import access_membership_by_id

    _lock_memberships(organization)
    target = access_membership_by_id(organization, membership_id)
    new_role = _check_role_assignable(actor, role)
    if target.role == Role.OWNER and not has_perm(actor, Perm.MANAGE_OWNERS):
        raise PermissionDenied("Only an owner can change an owner's role.")
    if target.role == Role.OWNER and new_role != Role.OWNER and _owners(organization).count() == 1:
        raise ValidationError(
            {"role": ["This is the organization's last owner; make someone else owner first."]}
        )
    target.role = new_role
    target.save(update_fields=["role"])
    return target


@transaction.atomic
def remove_member(organization: Organization, *, actor: Membership, membership_id: int) -> None:
    """Remove a member. Anyone may leave; admins remove non-owners; owners remove anyone.

    The last owner cannot be removed. The member's API tokens for this organization are
    revoked for good (inviting the person again does not bring them back).
    """
    from portal.tenancy.selectors import access_membership_by_id

    _lock_memberships(organization)
    target = access_membership_by_id(organization, membership_id)
    if target.pk != actor.pk:
        require_perm(actor, Perm.MANAGE_MEMBERS)
        if target.role == Role.OWNER:
            require_perm(actor, Perm.MANAGE_OWNERS)
    if target.role == Role.OWNER and _owners(organization).count() == 1:
        raise ValidationError(
            "This is the organization's last owner; make someone else owner first."
        )
    signals.membership_ending.send(
        sender=Membership,
        membership=target,
        reason=signals.MEMBER_LEFT if target.pk == actor.pk else signals.MEMBER_REMOVED,
    )
    target.delete()


@dataclass(frozen=True)
class Bootstrapped:
    organization: Organization
    user: object
    created_user: bool
    created_organization: bool
    password: str | None
    """The generated password, only when this call created the user without one given."""


@transaction.atomic
def bootstrap(*, org_name: str, org_slug: str, email: str, password: str = "") -> Bootstrapped:
    """Ensure an organization and its owner exist; safe to run on every start.

    An existing user's password is never changed. A new user without a given password gets a
    generated one, returned once so the operator can log in.
    """
    User = get_user_model()
    email = email.strip().lower()
    validate_email(email)
    user = User.objects.filter(email__iexact=email).first()
    generated = None
    created_user = user is None
    if created_user:
        if not password:
            generated = password = secrets.token_urlsafe(12)
        user = User.objects.create_user(
            email=email, password=password, is_staff=True, is_superuser=True
        )
    slug = slugify(org_slug or org_name)[:50]
    organization = Organization.objects.filter(slug=slug).first()
    created_org = organization is None
    if created_org:
        organization = create_organization(name=org_name, slug=slug, owner=user)
    else:
        user.memberships.get_or_create(organization=organization, defaults={"role": Role.OWNER})
    return Bootstrapped(organization, user, created_user, created_org, generated)
