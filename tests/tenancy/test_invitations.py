"""Signup is by invitation: the link is shown and e-mailed, works once, and only for the
invited address."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.tenancy.models import Invitation, Membership, Role
from tests.conftest import PASSWORD
from tests.factories import every


def invite(client, org, email, role="member"):
    return client.post(
        reverse("tenancy:members", kwargs={"org": org.slug}), {"email": email, "role": role}
    )


def link_path(url: str) -> str:
    return url.split("127.0.0.1:8000", 1)[-1] if "://" in url else url


def test_an_admin_invites_by_email_and_sees_the_link_once(
    login, acme, cast, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        page = invite(login(cast["admin"]), acme, "new@acme.test", "viewer")
    assert page.status_code == 200
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@acme.test"]
    link = page.context["invitation_url"]
    assert link in mail.outbox[0].body
    assert link.encode() in page.content
    invitation = every(Invitation).get(email="new@acme.test")
    assert link.rsplit("/", 2)[-2] not in invitation.token_hash  # only a hash is stored


def test_a_new_person_accepts_and_becomes_a_member_with_the_invited_role(client, acme, cast):
    from portal.tenancy.services import invite_member

    actor = every(Membership).get(user=cast["owner"], organization=acme)
    issued = invite_member(acme, actor=actor, email="new@acme.test", role=Role.VIEWER)
    response = client.post(link_path(issued.url), {"name": "New Person", "password": PASSWORD})
    assert response.status_code == 302
    user = get_user_model().objects.get(email="new@acme.test")
    assert every(Membership).get(user=user, organization=acme).role == Role.VIEWER
    assert client.get(reverse("dashboard:index", kwargs={"org": acme.slug})).status_code == 200


def test_an_invitation_link_works_only_once(client, acme, cast):
    from portal.tenancy.services import invite_member

    actor = every(Membership).get(user=cast["owner"], organization=acme)
    issued = invite_member(acme, actor=actor, email="new@acme.test")
    client.post(link_path(issued.url), {"name": "N", "password": PASSWORD})
    client.logout()
    again = client.post(link_path(issued.url), {"name": "M", "password": PASSWORD})
    assert again.status_code == 404


def test_an_expired_invitation_is_refused(client, acme, cast):
    from portal.tenancy.services import invite_member

    actor = every(Membership).get(user=cast["owner"], organization=acme)
    issued = invite_member(acme, actor=actor, email="late@acme.test")
    every(Invitation).filter(pk=issued.invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.post(link_path(issued.url), {"name": "Late", "password": PASSWORD})
    assert response.status_code == 404
    assert not get_user_model().objects.filter(email="late@acme.test").exists()


def test_a_logged_in_user_cannot_accept_someone_elses_invitation(login, acme, cast):
    from portal.tenancy.services import invite_member

    actor = every(Membership).get(user=cast["owner"], organization=acme)
    issued = invite_member(acme, actor=actor, email="someone@acme.test")
    response = login(cast["outsider"]).post(link_path(issued.url))
    assert response.status_code == 400
    assert b"This invitation is for someone@acme.test" in response.content
    assert not every(Membership).filter(user=cast["outsider"], organization=acme).exists()


def test_an_existing_user_accepts_while_logged_in_and_joins_a_second_organization(
    login, acme, globex, cast
):
    from portal.tenancy.services import invite_member

    actor = every(Membership).get(user=cast["outsider"], organization=globex)
    issued = invite_member(globex, actor=actor, email=cast["member"].email)
    client = login(cast["member"])
    assert client.post(link_path(issued.url)).status_code == 302
    orgs = set(
        every(Membership).filter(user=cast["member"]).values_list("organization__slug", flat=True)
    )
    assert orgs == {"acme", "globex"}
    switcher = client.get(reverse("dashboard:index", kwargs={"org": "acme"}))
    assert b'href="/o/globex/"' in switcher.content


def test_inviting_an_existing_member_is_a_clear_error(login, acme, cast):
    page = invite(login(cast["owner"]), acme, cast["viewer"].email)
    assert page.status_code == 400
    assert b"already a member" in page.content


def test_a_weak_password_is_refused_with_the_reason(client, acme, cast):
    from portal.tenancy.services import invite_member

    actor = every(Membership).get(user=cast["owner"], organization=acme)
    issued = invite_member(acme, actor=actor, email="weak@acme.test")
    response = client.post(link_path(issued.url), {"name": "W", "password": "123"})
    assert response.status_code == 400
    assert b"too short" in response.content
    assert not get_user_model().objects.filter(email="weak@acme.test").exists()
