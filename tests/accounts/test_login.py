"""Login, logout, password change, and throttling per account and per client that a forged
X-Forwarded-For does not bypass."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.accounts.models import LoginAttempts
from tests.conftest import PASSWORD

LOGIN = "/accounts/login/"


def attempt(client, email, password="wrong password", **headers):
    return client.post(LOGIN, {"username": email, "password": password}, **headers)


def test_login_with_email_and_password_lands_on_the_organization_dashboard(client, acme, cast):
    response = attempt(client, cast["member"].email, PASSWORD)
    assert response.status_code == 302
    assert client.get("/").url == reverse("dashboard:index", kwargs={"org": "acme"})


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(client, acme, cast):
    response = attempt(client, cast["member"].email)
    assert response.status_code == 200
    assert b"Please enter a correct e-mail address and password" in response.content


def test_logout_needs_a_post_and_ends_the_session(login, acme, cast):
    client = login(cast["member"])
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302  # back to the login page


def test_password_change_keeps_the_user_logged_in(login, acme, cast):
    client = login(cast["member"])
    response = client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "n3w-Passw0rd-long",
            "new_password2": "n3w-Passw0rd-long",
        },
    )
    assert response.status_code == 302
    cast["member"].refresh_from_db()
    assert cast["member"].check_password("n3w-Passw0rd-long")


def test_an_account_is_locked_after_five_failures_even_for_the_right_password(
    client, acme, cast, settings
):
    email = cast["member"].email
    for n in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        attempt(client, email, REMOTE_ADDR=f"10.0.0.{n}")
    response = attempt(client, email, PASSWORD, REMOTE_ADDR="10.0.0.99")
    assert response.status_code == 429
    assert b"Too many failed login attempts" in response.content
    assert int(response["Retry-After"]) > 0


def test_a_locked_account_may_log_in_again_once_the_lockout_window_has_ended(
    client, acme, cast, settings
):
    email = cast["member"].email
    for n in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        attempt(client, email, REMOTE_ADDR=f"10.0.0.{n}")
    assert attempt(client, email, PASSWORD, REMOTE_ADDR="10.0.0.99").status_code == 429
    LoginAttempts.objects.update(window_ends_at=timezone.now() - timedelta(seconds=1))
    assert attempt(client, email, PASSWORD, REMOTE_ADDR="10.0.0.99").status_code == 302


def test_other_accounts_are_not_locked_by_one_accounts_failures(client, acme, cast, settings):
    for n in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        attempt(client, cast["member"].email, REMOTE_ADDR=f"10.0.0.{n}")
    assert (
        attempt(client, cast["viewer"].email, PASSWORD, REMOTE_ADDR="10.0.1.1").status_code == 302
    )


def test_a_client_is_throttled_across_many_accounts(client, acme, cast, settings):
    settings.PORTAL_LOGIN_MAX_FAILURES_PER_CLIENT = 6
    for n in range(6):
        attempt(client, f"nobody{n}@acme.test", REMOTE_ADDR="192.0.2.7")
    response = attempt(client, cast["viewer"].email, PASSWORD, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 429


def test_a_forged_x_forwarded_for_does_not_escape_the_client_limit(client, acme, cast, settings):
    settings.PORTAL_LOGIN_MAX_FAILURES_PER_CLIENT = 6
    for n in range(6):
        attempt(
            client,
            f"nobody{n}@acme.test",
            REMOTE_ADDR="192.0.2.7",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        )
    response = attempt(
        client,
        cast["viewer"].email,
        PASSWORD,
        REMOTE_ADDR="192.0.2.7",
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )
    assert response.status_code == 429


@pytest.mark.parametrize("forged", ["203.0.113.9", "203.0.113.9, 198.51.100.1"])
def test_behind_one_trusted_proxy_the_client_is_the_address_the_proxy_appended(
    client, acme, cast, settings, forged
):
    settings.PORTAL_TRUSTED_PROXY_COUNT = 1
    settings.PORTAL_LOGIN_MAX_FAILURES_PER_CLIENT = 3
    proxy = "10.9.9.9"
    for n in range(3):
        # The client forges entries on the left; the proxy appends the real address on the right.
        attempt(
            client,
            f"nobody{n}@acme.test",
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"{forged}, 192.0.2.50",
        )
    blocked = attempt(
        client,
        cast["viewer"].email,
        PASSWORD,
        REMOTE_ADDR=proxy,
        HTTP_X_FORWARDED_FOR="1.2.3.4, 192.0.2.50",
    )
    assert blocked.status_code == 429
    other_client = attempt(
        client, cast["viewer"].email, PASSWORD, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="192.0.2.51"
    )
    assert other_client.status_code == 302
