"""``manage.py bootstrap`` creates an organization and its owner once, and is safe to repeat."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command

from portal.tenancy.models import Membership, Organization
from tests.factories import every


def bootstrap(*args, **env):
    out = StringIO()
    call_command("bootstrap", *args, stdout=out)
    return out.getvalue()


def test_bootstrap_creates_the_organization_and_owner_and_prints_the_login(db):
    output = bootstrap("--org-name", "Demo", "--email", "ops@example.com")
    user = get_user_model().objects.get(email="ops@example.com")
    assert every(Membership).get(user=user, organization__slug="demo").role == "owner"
    password = output.rsplit(": ", 1)[1].strip()
    assert user.check_password(password)


def test_bootstrap_twice_changes_nothing_and_keeps_the_password(db):
    first = bootstrap("--org-name", "Demo", "--email", "ops@example.com")
    password = first.rsplit(": ", 1)[1].strip()
    second = bootstrap("--org-name", "Demo", "--email", "ops@example.com")
    assert "password is unchanged" in second
    assert Organization.objects.count() == 1
    assert get_user_model().objects.get(email="ops@example.com").check_password(password)


def test_bootstrap_takes_the_password_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("PORTAL_BOOTSTRAP_PASSWORD", "a-long-operator-password")
    output = bootstrap("--org-name", "Ops", "--email", "ops@example.com")
    assert "a-long-operator-password" not in output
    assert (
        get_user_model()
        .objects.get(email="ops@example.com")
        .check_password("a-long-operator-password")
    )


def test_bootstrap_if_empty_does_nothing_when_an_organization_exists(acme):
    assert bootstrap("--if-empty", "--org-name", "Demo") == ""
    assert list(Organization.objects.values_list("slug", flat=True)) == ["acme"]
