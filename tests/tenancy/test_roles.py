"""Roles gate writes: viewers read only; admins manage members below owner; owners manage
everything; an organization always keeps an owner."""

import pytest
from django.urls import reverse

from portal.tenancy.models import Invitation, Membership, Role
from tests.factories import every


def membership_of(user, org):
    return every(Membership).get(user=user, organization=org)


def test_viewer_can_read_members_but_not_invite(api, acme, cast):
    client = api(cast["viewer"], acme)
    assert client.get(f"/api/v1/organizations/{acme.slug}/memberships/").status_code == 200
    response = client.post(
        f"/api/v1/organizations/{acme.slug}/invitations/", {"email": "x@acme.test"}, format="json"
    )
    assert response.status_code == 403
    assert "viewer" in response.json()["error"]["message"]
    assert not every(Invitation).filter(email="x@acme.test").exists()


def test_member_cannot_change_a_role(api, acme, cast):
    target = membership_of(cast["viewer"], acme)
    response = api(cast["member"], acme).patch(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/",
        {"role": "admin"},
        format="json",
    )
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.role == Role.VIEWER


def test_admin_changes_a_members_role(api, acme, cast):
    target = membership_of(cast["viewer"], acme)
    response = api(cast["admin"], acme).patch(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/",
        {"role": "member"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["role"] == "member"


def test_admin_cannot_make_anyone_owner(api, acme, cast):
    target = membership_of(cast["member"], acme)
    response = api(cast["admin"], acme).patch(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/",
        {"role": "owner"},
        format="json",
    )
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_admin_cannot_remove_an_owner(api, acme, cast):
    target = membership_of(cast["owner"], acme)
    response = api(cast["admin"], acme).delete(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/"
    )
    assert response.status_code == 403
    assert every(Membership).filter(pk=target.pk).exists()


def test_the_last_owner_cannot_be_demoted(api, acme, cast):
    target = membership_of(cast["owner"], acme)
    response = api(cast["owner"], acme).patch(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/",
        {"role": "admin"},
        format="json",
    )
    assert response.status_code == 400
    assert "last owner" in response.json()["error"]["fields"]["role"][0]
    target.refresh_from_db()
    assert target.role == Role.OWNER


def test_the_last_owner_cannot_leave(api, acme, cast):
    target = membership_of(cast["owner"], acme)
    response = api(cast["owner"], acme).delete(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/"
    )
    assert response.status_code == 400
    assert "last owner" in response.json()["error"]["message"]
    assert every(Membership).filter(pk=target.pk).exists()


def test_an_owner_can_hand_over_ownership_and_then_step_down(api, acme, cast):
    client = api(cast["owner"], acme)
    admin = membership_of(cast["admin"], acme)
    me = membership_of(cast["owner"], acme)
    base = f"/api/v1/organizations/{acme.slug}/memberships"
    assert client.patch(f"{base}/{admin.pk}/", {"role": "owner"}, format="json").status_code == 200
    assert client.patch(f"{base}/{me.pk}/", {"role": "admin"}, format="json").status_code == 200
    assert membership_of(cast["admin"], acme).role == Role.OWNER


def test_a_viewer_may_leave(api, acme, cast):
    target = membership_of(cast["viewer"], acme)
    response = api(cast["viewer"], acme).delete(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/"
    )
    assert response.status_code == 204
    assert not every(Membership).filter(pk=target.pk).exists()


def test_an_unknown_role_is_a_clear_400(api, acme, cast):
    target = membership_of(cast["viewer"], acme)
    response = api(cast["owner"], acme).patch(
        f"/api/v1/organizations/{acme.slug}/memberships/{target.pk}/",
        {"role": "god"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["role"]


@pytest.mark.parametrize("who", ["viewer", "member"])
def test_the_members_page_hides_invitations_from_non_admins(login, acme, cast, who):
    page = login(cast[who]).get(reverse("tenancy:members", kwargs={"org": acme.slug}))
    assert page.status_code == 200
    assert b"Invite someone" not in page.content


def test_a_viewer_posting_the_invite_form_gets_403(login, acme, cast):
    response = login(cast["viewer"]).post(
        reverse("tenancy:members", kwargs={"org": acme.slug}),
        {"email": "x@acme.test", "role": "member"},
    )
    assert response.status_code == 403
    assert not every(Invitation).filter(email="x@acme.test").exists()


def test_an_unknown_organization_slug_is_404_in_the_portal_and_the_api(login, api, acme, cast):
    assert login(cast["owner"]).get("/o/no-such-org/").status_code == 404
    response = api(cast["owner"], acme).get("/api/v1/organizations/no-such-org/memberships/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
