"""Personal API tokens: shown once, stored hashed, expiring, revocable, bound to one
organization, sent as ``Authorization: Bearer``."""

from datetime import timedelta

from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from portal.api.models import ApiToken
from portal.api.services import create_token


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
    ApiToken.objects.filter(pk=issued.token.pk).update(
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
    assert not ApiToken.objects.filter(name="child").exists()


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
