"""Every door that checks a password shares one lockout: the portal's login page, the admin
(which sends people to that page), the password change form, and anything else that calls
Django's ``authenticate()``. Failures at any door count for all of them."""

import pytest
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import authenticate, get_user_model
from django.test import Client, RequestFactory

from tests.conftest import PASSWORD

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
PASSWORD_CHANGE = "/accounts/password/"


@pytest.fixture
def superuser(db):
    """The bootstrap owner: a superuser."""
    return get_user_model().objects.create_superuser(email="root@acme.test", password=PASSWORD)


def portal_login(client, email, password="wrong password", **extra):
    return client.post(LOGIN, {"username": email, "password": password, **extra})


def admin_login(client, email, password="wrong password"):
    return client.post(ADMIN_LOGIN, {"username": email, "password": password, "next": "/admin/"})


def in_the_admin(client) -> bool:
    return client.get("/admin/").status_code == 200


def lock_at_the_portal(client, email, settings):
    for n in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        portal_login(client, email, REMOTE_ADDR=f"10.0.0.{n}")


def test_the_admin_login_page_sends_people_to_the_portals_login_page(client, db):
    response = client.get(ADMIN_LOGIN, {"next": "/admin/accounts/user/"})
    assert response.status_code == 302
    assert response.url == "/accounts/login/?next=/admin/accounts/user/"


def test_a_superuser_reaches_the_admin_through_the_portals_login_page(client, superuser):
    landed = client.get("/admin/", follow=True).redirect_chain[-1][0]
    assert landed == "/accounts/login/?next=/admin/"
    response = portal_login(client, superuser.email, PASSWORD, next="/admin/")
    assert response.status_code == 302
    assert response.url == "/admin/"
    assert in_the_admin(client)


def test_wrong_then_right_passwords_posted_at_the_admin_door_never_open_the_admin(
    client, superuser
):
    for _ in range(12):
        assert admin_login(client, superuser.email).status_code != 200
    admin_login(client, superuser.email, PASSWORD)
    assert not in_the_admin(client)


def test_a_superuser_locked_at_the_portal_is_locked_out_of_the_admin_too(
    client, superuser, settings
):
    lock_at_the_portal(client, superuser.email, settings)
    admin_login(client, superuser.email, PASSWORD)
    assert not in_the_admin(client)
    response = portal_login(client, superuser.email, PASSWORD, next="/admin/")
    assert response.status_code == 429
    assert not in_the_admin(client)


def test_a_logged_in_person_without_admin_rights_is_refused_by_the_admin_not_sent_in_circles(
    login, acme, cast
):
    client = login(cast["owner"])
    response = client.get(ADMIN_LOGIN, {"next": "/admin/"})
    assert response.status_code == 403


def test_the_admins_own_password_change_page_is_the_portals(login, superuser):
    response = login(superuser).get("/admin/password_change/")
    assert response.status_code == 302
    assert response.url == PASSWORD_CHANGE


def test_any_caller_of_authenticate_is_refused_while_the_account_is_locked(
    client, superuser, settings
):
    lock_at_the_portal(client, superuser.email, settings)
    request = RequestFactory().post(LOGIN, REMOTE_ADDR="10.1.1.1")
    assert authenticate(request, email=superuser.email, password=PASSWORD) is None


def test_failures_at_the_admins_own_login_form_lock_the_portals_login_page(client, superuser):
    # A door that calls authenticate() itself, as Django's admin form does, shares the count.
    for n in range(5):
        request = RequestFactory().post(ADMIN_LOGIN, REMOTE_ADDR=f"10.2.0.{n}")
        form = AdminAuthenticationForm(
            request, data={"username": superuser.email, "password": "wrong password"}
        )
        assert not form.is_valid()
    assert portal_login(client, superuser.email, PASSWORD).status_code == 429


def test_wrong_current_passwords_at_password_change_count_toward_the_lockout(
    login, acme, cast, settings
):
    client = login(cast["member"])
    new = "n3w-Passw0rd-long"
    for _ in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        response = client.post(
            PASSWORD_CHANGE,
            {"old_password": "wrong password", "new_password1": new, "new_password2": new},
        )
        assert response.status_code == 200
    refused = client.post(
        PASSWORD_CHANGE, {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert refused.status_code == 429
    assert b"Too many failed password attempts" in refused.content
    cast["member"].refresh_from_db()
    assert cast["member"].check_password(PASSWORD)
    assert portal_login(Client(), cast["member"].email, PASSWORD).status_code == 429


def test_the_api_takes_no_passwords(acme, cast):
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Basic " + _basic(cast["owner"].email, PASSWORD))
    assert api.get("/api/v1/me/").status_code == 401


def _basic(email: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{email}:{password}".encode()).decode()
