"""Personal API tokens: shown once, stored hashed, expiring, revocable, bound to one
organization, sent as ``Authorization: Bearer``."""

from datetime import timedelta

from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from portal.api.models import ApiToken
from portal.api.services import create_token
from tests.factories import every


def bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_token_created_in_the_portal_is_shown_once_and_works(login, acme, cast):
    client = login(cast["member"])
    page = client.post(
        reverse("api_tokens:list", kwargs={"org": "acme"}), {"name": "ci", "expires_in_days": 30}
    )
    secret = page.context["issued"].secret
    assert secret.encode() in page.content
    assert (
        secret.encode()
        not in client.get(reverse("api_tokens:list", kwargs={"org": "acme"})).content
    )
    me = bearer(secret).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["email"] == cast["member"].email


def test_only_a_hash_of_the_token_is_stored(acme, cast):
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_apitoken")
        rows = cursor.fetchall()
    assert rows
    assert all(issued.secret not in str(value) for row in rows for value in row)


def test_an_expired_token_is_refused_with_the_reason(acme, cast):
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=1)
    every(ApiToken).filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    response = bearer(issued.secret).get("/api/v1/me/")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_a_revoked_token_stops_working(api, acme, cast, login):
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    login(cast["member"]).post(
        reverse("api_tokens:revoke", kwargs={"org": "acme", "token_id": issued.token.pk})
    )
    response = bearer(issued.secret).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This token was revoked."


def test_a_token_only_reaches_the_organization_it_was_created_in(acme, globex, cast):
    from portal.tenancy.models import Membership

    Membership.objects.create(organization=globex, user=cast["member"], role="member")
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    client = bearer(issued.secret)
    assert client.get("/api/v1/organizations/acme/memberships/").status_code == 200
    assert client.get("/api/v1/organizations/globex/memberships/").status_code == 404
    assert [o["slug"] for o in client.get("/api/v1/organizations/").json()["results"]] == ["acme"]


def test_malformed_authorization_headers_get_a_clear_401(acme, cast):
    for header, words in [
        ("Bearer", "Malformed"),
        ("Bearer a b", "Malformed"),
        ("Token abc", "Unsupported Authorization scheme"),
        ("Bearer nope", "Invalid token"),
    ]:
        response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header
        assert words in response.json()["error"]["message"], header
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_tokens_cannot_mint_tokens(api, acme, cast):
    response = api(cast["member"], acme).post(
        "/api/v1/organizations/acme/tokens/",
        {"name": "child", "expires_in_days": 365},
        format="json",
    )
    assert response.status_code == 403
    assert not every(ApiToken).filter(name="child").exists()


def test_a_session_creates_a_token_through_the_api_and_sees_it_once(login, acme, cast):
    client = login(cast["viewer"])
    created = client.post(
        "/api/v1/organizations/acme/tokens/",
        {"name": "script", "expires_in_days": 7},
        content_type="application/json",
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    listed = client.get("/api/v1/organizations/acme/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["script"]
    assert "token" not in listed[0]
    assert secret.startswith(listed[0]["prefix"])


def test_a_token_expiry_beyond_the_maximum_is_refused(login, acme, cast, settings):
    response = login(cast["member"]).post(
        "/api/v1/organizations/acme/tokens/",
        {"name": "forever", "expires_in_days": settings.PORTAL_API_TOKEN_MAX_DAYS + 1},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "expires_in_days" in response.json()["error"]["fields"]


def test_people_see_only_their_own_tokens(api, acme, cast):
    create_token(acme, user=cast["owner"], name="owner-secret-script", expires_in_days=30)
    listed = api(cast["member"], acme).get("/api/v1/organizations/acme/tokens/").json()["results"]
    assert "owner-secret-script" not in [t["name"] for t in listed]


def _membership(user, organization):
    from portal.tenancy.models import Membership

    return every(Membership).get(user=user, organization=organization)


def _rejoin(organization, *, inviter, user):
    """Invite ``user`` back into ``organization`` and accept the invitation as them."""
    from portal.tenancy.services import accept_invitation, invite_member

    issued = invite_member(organization, actor=_membership(inviter, organization), email=user.email)
    accept_invitation(raw_token=issued.url.rstrip("/").rsplit("/", 1)[-1], user=user)


def test_removing_a_member_revokes_their_tokens_for_good(login, acme, cast):
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    assert bearer(issued.secret).get("/api/v1/me/").status_code == 200
    target = _membership(cast["member"], acme)
    removed = login(cast["owner"]).delete(f"/api/v1/organizations/acme/memberships/{target.pk}/")
    assert removed.status_code == 204

    token = every(ApiToken).get(pk=issued.token.pk)
    assert token.revoked_at is not None
    assert token.state == "revoked"
    assert "removed" in token.revoked_reason

    _rejoin(acme, inviter=cast["owner"], user=cast["member"])
    client = bearer(issued.secret)
    for path in ("/api/v1/me/", "/api/v1/organizations/acme/memberships/"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["message"].startswith("This token was revoked")
    fresh = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    assert bearer(fresh.secret).get("/api/v1/organizations/acme/memberships/").status_code == 200


def test_a_revoked_token_shows_why_in_its_owners_list(login, acme, cast):
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    target = _membership(cast["member"], acme)
    login(cast["owner"]).delete(f"/api/v1/organizations/acme/memberships/{target.pk}/")
    _rejoin(acme, inviter=cast["owner"], user=cast["member"])
    client = login(cast["member"])
    listed = client.get("/api/v1/organizations/acme/tokens/").json()["results"]
    assert [(t["id"], t["state"]) for t in listed] == [(issued.token.pk, "revoked")]
    assert "removed" in listed[0]["revoked_reason"]
    page = client.get(reverse("api_tokens:list", kwargs={"org": "acme"}))
    assert b"removed from the organization" in page.content


def test_leaving_an_organization_revokes_ones_tokens_there_only(login, acme, globex, cast):
    from portal.tenancy.models import Membership

    Membership.objects.create(organization=globex, user=cast["member"], role="member")
    acme_token = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    globex_token = create_token(globex, user=cast["member"], name="ci", expires_in_days=30)
    own = _membership(cast["member"], acme)
    left = login(cast["member"]).delete(f"/api/v1/organizations/acme/memberships/{own.pk}/")
    assert left.status_code == 204

    _rejoin(acme, inviter=cast["owner"], user=cast["member"])
    assert bearer(acme_token.secret).get("/api/v1/me/").status_code == 401
    assert "left" in every(ApiToken).get(pk=acme_token.token.pk).revoked_reason
    assert bearer(globex_token.secret).get("/api/v1/me/").status_code == 200


def test_a_membership_deleted_by_an_operator_revokes_its_tokens(acme, cast):
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    _membership(cast["member"], acme).delete()  # as the admin site's delete does
    _rejoin(acme, inviter=cast["owner"], user=cast["member"])
    assert bearer(issued.secret).get("/api/v1/me/").status_code == 401
    assert every(ApiToken).get(pk=issued.token.pk).revoked_at is not None


def test_a_token_older_than_its_users_membership_is_refused_and_revoked(acme, cast):
    # Should a membership ever vanish without its tokens being revoked (a restore, raw SQL),
    # a token minted under the old membership still never works under the new one.
    from portal.tenancy.models import Membership

    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    target = _membership(cast["member"], acme)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tenancy_membership WHERE id = %s", [target.pk])
    Membership.objects.create(organization=acme, user=cast["member"], role="member")
    assert every(ApiToken).get(pk=issued.token.pk).revoked_at is None

    response = bearer(issued.secret).get("/api/v1/organizations/acme/memberships/")
    assert response.status_code == 401
    assert every(ApiToken).get(pk=issued.token.pk).revoked_at is not None


def test_a_token_acts_with_its_users_current_role(acme, cast):
    from portal.tenancy.models import Role
    from portal.tenancy.services import change_role

    issued = create_token(acme, user=cast["admin"], name="ci", expires_in_days=30)
    client = bearer(issued.secret)
    invite = {"email": "first@acme.test"}
    assert client.post("/api/v1/organizations/acme/invitations/", invite).status_code == 201
    change_role(
        acme,
        actor=_membership(cast["owner"], acme),
        membership_id=_membership(cast["admin"], acme).pk,
        role=Role.VIEWER,
    )
    second = client.post("/api/v1/organizations/acme/invitations/", {"email": "second@acme.test"})
    assert second.status_code == 403
    assert client.get("/api/v1/organizations/acme/memberships/").status_code == 200


def test_deactivating_a_user_revokes_their_tokens_for_good(acme, cast):
    issued = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    user = cast["member"]
    user.is_active = False
    user.save()
    assert bearer(issued.secret).get("/api/v1/me/").status_code == 401
    user.is_active = True
    user.save()
    response = bearer(issued.secret).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("This token was revoked")
    assert "deactivated" in every(ApiToken).get(pk=issued.token.pk).revoked_reason


def test_upgrading_revokes_tokens_left_behind_by_earlier_removals(acme, cast):
    import importlib

    from django.db.migrations.loader import MigrationLoader

    from portal.tenancy.models import Membership

    kept = create_token(acme, user=cast["owner"], name="ci", expires_in_days=30)
    orphan = create_token(acme, user=cast["member"], name="ci", expires_in_days=30)
    with connection.cursor() as cursor:  # removed before removal revoked tokens
        cursor.execute(
            "DELETE FROM tenancy_membership WHERE id = %s", [_membership(cast["member"], acme).pk]
        )
    Membership.objects.create(organization=acme, user=cast["member"], role="member")
    migration = importlib.import_module("portal.api.migrations.0002_token_revoked_reason")
    # The models as the migration sees them (their managers are Django's plain ones).
    state = MigrationLoader(connection).project_state(("api", "0002_token_revoked_reason"))
    migration.revoke_orphaned_tokens(state.apps, None)
    assert every(ApiToken).get(pk=orphan.token.pk).revoked_reason == "membership ended"
    assert every(ApiToken).get(pk=kept.token.pk).revoked_at is None
