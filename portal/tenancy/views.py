"""Portal pages for organizations: home redirect, members, invitations."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts.backends import BACKEND
from portal.tenancy import selectors, services
from portal.tenancy.access import SESSION_KEY, tenant_view
from portal.tenancy.forms import AcceptInvitationForm, InviteForm, OrganizationForm, RoleForm
from portal.tenancy.permissions import Perm


def error_messages(error: ValidationError) -> list[str]:
    """Flatten a ValidationError (plain or per field) into sentences for the page."""
    return [str(message) for message in error.messages]


@login_required
def home(request):
    """Send the user to the organization they used last, or their first one."""
    memberships = list(selectors.memberships_of_user(request.user))
    if not memberships:
        return render(request, "tenancy/no_organization.html", {"form": OrganizationForm()})
    last = request.session.get(SESSION_KEY)
    chosen = next((m for m in memberships if m.organization.slug == last), memberships[0])
    return redirect("dashboard:index", org=chosen.organization.slug)


@login_required
@require_POST
def create_organization(request):
    form = OrganizationForm(request.POST)
    if form.is_valid():
        try:
            organization = services.create_organization(
                name=form.cleaned_data["name"], slug=form.cleaned_data["slug"], owner=request.user
            )
        except ValidationError as error:
            for message in error_messages(error):
                messages.error(request, message)
        else:
            messages.success(request, f"Organization {organization.name} created.")
            return redirect("dashboard:index", org=organization.slug)
    else:
        messages.error(request, "Give the organization a name.")
    return redirect("home")


def _members_page(request, *, invite_form=None, invitation_url=None, status=200):
    organization = request.organization
    return render(
        request,
        "tenancy/members.html",
        {
            "memberships": selectors.list_memberships(organization),
            "invitations": selectors.list_pending_invitations(organization),
            "invite_form": invite_form or InviteForm(),
            "invitation_url": invitation_url,
            "roles": RoleForm.base_fields["role"].choices,
        },
        status=status,
    )


@tenant_view(write_perm=Perm.MANAGE_MEMBERS)
@require_http_methods(["GET", "POST"])
def members(request):
    """List members and pending invitations; POST invites someone."""
    if request.method == "GET":
        return _members_page(request)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _members_page(request, invite_form=form, status=400)
    try:
        issued = services.invite_member(
            request.organization,
            actor=request.membership,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
        )
    except (ValidationError, PermissionDenied) as error:
        for message in error_messages(error) if isinstance(error, ValidationError) else [error]:
            form.add_error(None, str(message))
        return _members_page(request, invite_form=form, status=400)
    messages.success(request, f"Invitation sent to {issued.invitation.email}.")
    return _members_page(request, invitation_url=issued.url)


@tenant_view(write_perm=Perm.MANAGE_MEMBERS)
@require_POST
def change_role(request, membership_id: int):
    selectors.access_membership_by_id(request.organization, membership_id)  # 404 first
    form = RoleForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose a valid role.")
        target = services.change_role(
            request.organization,
            actor=request.membership,
            membership_id=membership_id,
            role=form.cleaned_data["role"],
        )
    except ValidationError as error:
        for message in error_messages(error):
            messages.error(request, message)
    else:
        messages.success(request, f"{target.user} is now {target.get_role_display().lower()}.")
    return redirect("tenancy:members", org=request.organization.slug)


@tenant_view(write_perm=Perm.VIEW)
@require_POST
def remove_member(request, membership_id: int):
    """Remove someone, or leave (removing oneself needs no more than being a member)."""
    leaving = membership_id == request.membership.pk
    try:
        services.remove_member(
            request.organization, actor=request.membership, membership_id=membership_id
        )
    except ValidationError as error:
        for message in error_messages(error):
            messages.error(request, message)
        return redirect("tenancy:members", org=request.organization.slug)
    if leaving:
        messages.success(request, f"You left {request.organization}.")
        request.session.pop(SESSION_KEY, None)
        return redirect("home")
    messages.success(request, "Member removed.")
    return redirect("tenancy:members", org=request.organization.slug)


@tenant_view(write_perm=Perm.MANAGE_MEMBERS)
@require_POST
def revoke_invitation(request, invitation_id: int):
    services.revoke_invitation(
        request.organization, actor=request.membership, invitation_id=invitation_id
    )
    messages.success(request, "Invitation revoked.")
    return redirect("tenancy:members", org=request.organization.slug)


@require_http_methods(["GET", "POST"])
def accept_invitation(request, token: str):
    """Join an organization through an invitation link (signing up if not logged in)."""
    invitation = services.find_pending_invitation(token)
    if invitation is None:
        return render(request, "tenancy/invitation_invalid.html", status=404)
    signed_in = request.user.is_authenticated
    form = AcceptInvitationForm(
        request.POST if request.method == "POST" and not signed_in else None
    )
    errors: list[str] = []
    if request.method == "POST" and (signed_in or form.is_valid()):
        details = {} if signed_in else form.cleaned_data
        try:
            membership = services.accept_invitation(
                raw_token=token,
                user=request.user if signed_in else None,
                name=details.get("name", ""),
                password=details.get("password", ""),
            )
        except ValidationError as error:
            errors = error_messages(error)
        else:
            if not signed_in:
                login(request, membership.user, backend=BACKEND)
            messages.success(request, f"Welcome to {membership.organization}.")
            return redirect("dashboard:index", org=membership.organization.slug)
    return render(
        request,
        "tenancy/invitation_accept.html",
        {"invitation": invitation, "form": form, "errors": errors},
        status=400 if errors or form.errors else 200,
    )
