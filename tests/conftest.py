"""The fixed cast every test can use, and the real services the suite runs against.

Cast: in organization **Acme** an owner, an admin, a member and a viewer; in **Globex** an
outsider (Globex's owner). With ``PORTAL_REQUIRE_SERVICES=1`` (set by ``.ci/run``) the suite
refuses to start unless PostgreSQL and Redis are configured and reachable. Child processes
are ended with their test and never outlive the suite (``tests/hygiene.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from portal.tenancy.models import Membership, Organization, Role
from tests import hygiene
from tests.hygiene import (  # noqa: F401  (hooks of this conftest)
    pytest_runtest_teardown,
    pytest_sessionfinish,
    pytest_unconfigure,
)

PASSWORD = "correct horse battery staple 42"

# This run's processes count for /metrics in a directory of their own, not in the one `make
# run` shows (var/metrics); child processes inherit it through the environment. Set here, as
# this file is loaded, because the first import of portal.ops.metrics (by a test module or a
# conftest below this one) opens its files there.
_METRICS_DIR = tempfile.mkdtemp(prefix="portal-test-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = django_settings.PROMETHEUS_MULTIPROC_DIR = _METRICS_DIR


def pytest_configure(config):
    hygiene.pytest_configure(config)
    config.add_cleanup(lambda: shutil.rmtree(_METRICS_DIR, ignore_errors=True))
    if os.environ.get("PORTAL_REQUIRE_SERVICES") != "1":
        return
    problems = []
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        problems.append("DATABASE_URL does not point at PostgreSQL")
    if not django_settings.REDIS_URL:
        problems.append("REDIS_URL is not set")
    else:
        import redis

        try:
            redis.Redis.from_url(django_settings.REDIS_URL, socket_timeout=3).ping()
        except redis.RedisError as error:
            problems.append(f"Redis at REDIS_URL is unreachable ({type(error).__name__})")
    if problems:
        raise pytest.UsageError("PORTAL_REQUIRE_SERVICES=1 but " + "; ".join(problems))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The cast's passwords are hashed on every test; PBKDF2's cost buys nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """A fresh cache namespace per test, so throttling counters never leak between tests."""
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    for conf in caches.values():
        conf["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches


def make_user(email: str, name: str = ""):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(email=email, password=PASSWORD, name=name)


@pytest.fixture
def acme(db) -> Organization:
    return Organization.objects.create(name="Acme", slug="acme")


@pytest.fixture
def globex(db) -> Organization:
    return Organization.objects.create(name="Globex", slug="globex")


def _member(org, email, role):
    user = make_user(email, email.split("@")[0].title())
    Membership.objects.create(organization=org, user=user, role=role)
    return user


@pytest.fixture
def owner(acme):
    return _member(acme, "owner@acme.test", Role.OWNER)


@pytest.fixture
def admin(acme):
    return _member(acme, "admin@acme.test", Role.ADMIN)


@pytest.fixture
def member(acme):
    return _member(acme, "member@acme.test", Role.MEMBER)


@pytest.fixture
def viewer(acme):
    return _member(acme, "viewer@acme.test", Role.VIEWER)


@pytest.fixture
def outsider(globex):
    return _member(globex, "outsider@globex.test", Role.OWNER)


@pytest.fixture
def cast(owner, admin, member, viewer, outsider):
    return {
        "owner": owner,
        "admin": admin,
        "member": member,
        "viewer": viewer,
        "outsider": outsider,
    }


@pytest.fixture
def login(client):
    """``login(user)`` returns Django's test client logged in as ``user``."""

    def as_user(user):
        client.force_login(user)
        return client

    return as_user


@pytest.fixture
def api():
    """``api(user, org)`` returns an API client authenticated with a fresh personal token."""
    from portal.api.services import create_token

    def as_user(user, organization):
        issued = create_token(
            organization, user=user, name=f"t-{uuid.uuid4().hex[:6]}", expires_in_days=30
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        return client

    return as_user
