"""Fixtures for vault tests: the Calendly sandbox wired into the portal, and members.

``calendly`` is the running sandbox (reset to its seed) with ``CALENDLY_API_BASE_URL``
pointing at it; the gateway reads that setting on every call, so changing it per test is
enough. ``as_member(user)`` is the user's Acme membership, the actor services expect.
"""

from __future__ import annotations

import pytest

from portal.tenancy.models import Membership
from portal.vault.models import Credential
from tests.connectors.conftest import calendly_sandbox, calendly_sandbox_session  # noqa: F401
from tests.factories import every

TOKEN_FIELD = "personal_access_token"
REJECTED = "Calendly rejected the Personal Access Token (401). Check the token and validate again."


@pytest.fixture
def calendly(monkeypatch, settings, calendly_sandbox):  # noqa: F811
    """The sandbox, with the portal's Calendly connector pointed at it."""
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    return calendly_sandbox


@pytest.fixture
def as_member(acme):
    """``as_member(user)``: the user's membership in Acme (what services take as actor)."""

    def membership(user) -> Membership:
        return (
            every(Membership)
            .select_related("user", "organization")
            .get(organization=acme, user=user)
        )

    return membership


def stored_row(credential: Credential) -> str:
    """Every column of the credential's row as the database holds it, as one text."""
    from django.db import connection

    table = connection.ops.quote_name(Credential._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [credential.pk])  # noqa: S608
        return repr(cursor.fetchone())
