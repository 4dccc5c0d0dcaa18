"""Every operation of the API, hunted for 5xx and schema mismatches by schemathesis.

The schema is the one the API serves at ``/api/schema/``. Requests go through the WSGI
application in this process (no server, no thread), inside the test's database transaction,
so every operation starts from the same world and leaves nothing behind: Acme, where the
caller is an owner with a personal token, and Globex, the other tenant; each has a
credential, a triggered flow with a deployment, an event and a failed run, a polling flow,
a pending invitation and a second token.

Generated path parameters are mostly aimed at that world (both tenants' slugs and ids, so
another tenant's objects are tried too); ids generated malformed on purpose (negative
cases) are sent as they are. One request in three also carries text that once broke the
API (a NUL, "²", ...) in a query parameter or a JSON string. Documented request examples
are sent as written and with a NUL in each of their strings.

Checks: no 5xx; every status code, content type and header is documented; every body
matches its schema; an operation needing authentication refuses a request without it.
Two checks are off on purpose: ``positive_data_acceptance`` (schema-valid input is still
refused by rules no schema states, e.g. replaying a run that did not fail) and
``negative_data_rejection`` (lenient by design: an empty filter means "any", a form field
left empty is "not given", a bad ``page_size`` falls back to the default).

Bounded and repeatable for CI: a fixed seed, derandomized generation, no example database,
``EXAMPLES_PER_OPERATION`` generated requests per operation (about 25 s of CPU in all on a
2-core machine).
"""

from __future__ import annotations

import copy
import socket

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation

from portal.api.services import create_token
from portal.tenancy.models import Membership, Organization
from portal.tenancy.services import invite_member
from tests.connectors.conftest import calendly_sandbox, calendly_sandbox_session  # noqa: F401
from tests.factories import (
    every,
    make_credential,
    make_deployment,
    make_event,
    make_processflow,
    make_run,
    owner_of,
)

EXAMPLES_PER_OPERATION = 40
# Text that broke the API once (a NUL reached PostgreSQL; "²" passed str.isdigit() and
# failed int()); offered where strings are generated, see _offer_hostile_text.
HOSTILE_TEXT = ["\x00", "a\x00b", "\u00b2", "null,null", "99999999999999999999"]
# Ids that once got a 500 (int("abc") in a view); offered besides the world's own ids.
MALFORMED_IDS = ["abc", "null,null", "99999999999999999999"]


def _config(**phases: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": 9_2025,
            "phases": {name: {"enabled": enabled} for name, enabled in phases.items()},
            "generation": {
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "database": "none",
                # The caller's token is set by the test; generated Authorization headers
                # would only be replaced, and make schemathesis believe it sent a bad one.
                "with-security-parameters": False,
            },
            "checks": {
                "positive_data_acceptance": {"enabled": False},
                "negative_data_rejection": {"enabled": False},
            },
        }
    )


def _has_examples(ctx) -> bool:
    body = ctx.operation.definition.raw.get("requestBody", {})
    return any("examples" in media for media in body.get("content", {}).values())


APP = get_wsgi_application()
# Generated requests (coverage and fuzzing); schemathesis runs documented examples apart.
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP, config=_config(examples=False))
documented = schemathesis.openapi.from_wsgi(
    "/api/schema/", APP, config=_config(coverage=False, fuzzing=False)
).include(_has_examples)


@pytest.fixture
def loopback_only(monkeypatch):
    """Outbound connections beyond loopback fail as on a network without a route, so a
    generated URL (a credential check against some host) never leaves this machine."""
    original = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else "localhost"
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ConnectionRefusedError(f"tests stay on loopback, not {host}")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def in_test_transaction():
    """Requests through the WSGI handler keep the test's database connection: Django closes
    it when a request finishes, which would end the test's transaction (the test client
    disconnects the same handler)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


POLLING = {
    "trigger": {"type": "polling", "schedule": {"every_seconds": 300}},
    "steps": [{"name": "document", "type": "map", "mapping": {"note": "checked"}}],
}


def _furnish(organization: Organization) -> dict:
    """One of each tenant-owned object in ``organization``: their ids, and which one is the
    polling flow."""
    owner = owner_of(organization)
    credential = make_credential(organization)
    flow = make_processflow(organization, credential)
    polling = make_processflow(organization, credential, name="Polling", definition=POLLING)
    event = make_event(make_deployment(flow))
    run = make_run(event, status="failed")  # replayable
    invitation = invite_member(organization, actor=owner, email="new@example.com").invitation
    token = create_token(organization, user=owner.user, name="another", expires_in_days=5).token
    members = every(Membership).filter(organization=organization).values_list("pk", flat=True)
    ids = [credential.pk, flow.pk, polling.pk, event.pk, run.pk, invitation.pk, token.pk]
    return {"ids": [*ids, *members], "polling": polling.pk}


@pytest.fixture
def world(cast, acme, globex, monkeypatch, calendly_sandbox, loopback_only, in_test_transaction):  # noqa: F811
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    ours, theirs = _furnish(acme), _furnish(globex)
    issued = create_token(acme, user=cast["owner"], name="schemathesis", expires_in_days=5)
    return {
        "headers": {"Authorization": f"Bearer {issued.secret}"},
        "slugs": [acme.slug, globex.slug],
        # Never the caller's own token: revoking it would make the rest of an operation's
        # examples 401s. (Ids of different kinds may coincide; that one value is skipped.)
        "ids": sorted(set(ours["ids"] + theirs["ids"]) - {issued.token.pk}),
        "polling": ours["polling"],
    }


def _point_at_the_world(case, data, world) -> None:
    """Aim path parameters at the world most of the time: the organization may always be
    Acme or Globex; an id one of theirs, or one of the malformed ids that once got a 500,
    unless it was generated malformed on purpose."""
    path = case.path_parameters
    if "org" in path:
        path["org"] = data.draw(st.sampled_from([*world["slugs"], path["org"]]), "org")
    if "id" in path and not case.meta.is_negative_at(ParameterLocation.PATH):
        choices = [*world["ids"], path["id"], *MALFORMED_IDS]
        path["id"] = data.draw(st.sampled_from(choices), "id")


def _string_leaves(value, path=()):
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _string_leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _string_leaves(child, (*path, index))


def _replace(document, path, new):
    if not path:
        return new
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    target[last] = new
    return document


def _offer_hostile_text(case, data) -> None:
    """One time in three, put text that once broke the API in a query parameter (declared
    or not) or a string of a JSON body: random strings almost never hold a NUL, and never
    an id that is almost a number."""
    if data.draw(st.integers(0, 2), "offer hostile text") != 0:
        return
    text = data.draw(st.sampled_from(HOSTILE_TEXT), "hostile text")
    leaves = []
    if case.media_type == "application/json" and isinstance(case.body, dict | list):
        leaves = list(_string_leaves(case.body))
    names = sorted({p.name for p in case.operation.query} | set(case.query or {}) | {"q"})
    target = data.draw(st.sampled_from([*(("body", leaf) for leaf in leaves), *names]))
    if isinstance(target, tuple):
        case.body = _replace(copy.deepcopy(case.body), target[1], text)
    else:
        case.query = {**(case.query or {}), target: text}


# The world is shared by an operation's examples on purpose: what one request changes (a
# deleted flow, a revoked invitation) is what the next one finds.
@schema.given(data=st.data())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@schema.parametrize()
def test_every_operation_answers_as_documented_and_never_5xx(case, data, world):
    _point_at_the_world(case, data, world)
    _offer_hostile_text(case, data)
    response = case.call_and_validate(headers=world["headers"])
    assert response.status_code < 500, response.text


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@documented.parametrize()
def test_documented_examples_work_and_a_nul_in_any_of_their_strings_is_refused(case, world):
    """Each request example of the schema, with a NUL put in each of its strings in turn, is
    refused as documented (never a 5xx); as written, it works."""
    case.path_parameters = {**case.path_parameters, "org": "acme"}
    if "id" in case.path_parameters:
        case.path_parameters["id"] = world["polling"]
    example = case.body
    for leaf in list(_string_leaves(example)):
        case.body = _replace(copy.deepcopy(example), leaf, "a\x00b")
        response = case.call_and_validate(headers=world["headers"])
        assert response.status_code == 400, (leaf, response.text)
    case.body = example
    response = case.call_and_validate(headers=world["headers"])
    assert response.status_code < 300, response.text
