"""Generated: every tenant route answers 404 to someone outside the organization, for every
method, through the portal and the API, and changes nothing.

A new route whose URL names an object must register how to make such an object in
``OBJECT_FACTORIES`` (by URL keyword) or ``PK_KINDS`` (by route name, for API ``pk``); a
keyword that names something every tenant shares (an installed application) goes in
``SHARED_KEYWORDS``.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.agents.models import Agent, AgentGroup, RegistrationKey
from portal.api.models import ApiToken
from portal.api.services import create_token
from portal.notifications.models import AlertRule
from portal.processflows.models import Deployment, Processflow, Run, TriggerEvent
from portal.tenancy.models import Invitation, Membership
from portal.tenancy.services import invite_member
from portal.vault.models import Credential
from tests.factories import (
    every,
    make_agent,
    make_credential,
    make_deployment,
    make_event,
    make_processflow,
    make_run,
)
from tests.routes import tenant_routes

METHODS = ["get", "post", "put", "patch", "delete"]


def _membership(acme, cast):
    return every(Membership).get(organization=acme, user=cast["member"])


def _invitation(acme, cast):
    actor = every(Membership).get(organization=acme, user=cast["owner"])
    return invite_member(acme, actor=actor, email="invitee@acme.test").invitation


def _token(acme, cast):
    return create_token(acme, user=cast["owner"], name="acme-token", expires_in_days=30).token


def _credential(acme, cast):
    return make_credential(acme)


def _processflow(acme, cast):
    return make_processflow(acme, make_credential(acme))


def _event(acme, cast):
    return make_event(make_deployment(_processflow(acme, cast)))


def _run(acme, cast):
    return make_run(_event(acme, cast), status="failed")


def _agent(acme, cast):
    return make_agent(acme).agent


def _agent_group(acme, cast):
    return make_agent(acme, name="Plant B").agent.group


def _rule(acme, cast):
    from portal.notifications.services import create_rule

    actor = every(Membership).get(organization=acme, user=cast["owner"])
    return create_rule(
        acme, actor=actor, name="On call", channel="email", kinds=["run_failed"],
        email="oncall@acme.test",
    ).rule  # fmt: skip


OBJECT_FACTORIES = {
    "membership_id": _membership,
    "invitation_id": _invitation,
    "token_id": _token,
    "credential_id": _credential,
    "processflow_id": _processflow,
    "event_id": _event,
    "run_id": _run,
    "rule_id": _rule,
    "agent_id": _agent,
    "group_id": _agent_group,
}
PK_KINDS = {
    "api:membership-detail": "membership_id",
    "api:invitation-detail": "invitation_id",
    "api:token-detail": "token_id",
    "api:credential-detail": "credential_id",
    "api:credential-validate": "credential_id",
    "api:credential-events": "credential_id",
    "api:processflow-detail": "processflow_id",
    "api:processflow-deploy": "processflow_id",
    "api:processflow-undeploy": "processflow_id",
    "api:processflow-deployment": "processflow_id",
    "api:processflow-run": "processflow_id",
    "api:event-detail": "event_id",
    "api:run-detail": "run_id",
    "api:run-replay": "run_id",
    "api:agent-detail": "agent_id",
    "api:agent-revoke": "agent_id",
    "api:agent-move": "agent_id",
    "api:agent-registration-key": "agent_id",
    "api:agent-group-detail": "group_id",
}
# URL keywords naming what every tenant shares, not an object of one organization.
SHARED_KEYWORDS = {"application": "calendly", "action": "users/me"}
MODELS = {
    "membership_id": Membership,
    "invitation_id": Invitation,
    "token_id": ApiToken,
    "credential_id": Credential,
    "processflow_id": Processflow,
    "deployment": Deployment,
    "event_id": TriggerEvent,
    "run_id": Run,
    "rule_id": AlertRule,
    "agent_id": Agent,
    "group_id": AgentGroup,
}

ROUTES = tenant_routes()


def _object_kwargs(route, acme, cast) -> dict:
    kwargs = {}
    for name in route.kwargs:
        if name == "org":
            continue
        if name in SHARED_KEYWORDS:
            kwargs[name] = SHARED_KEYWORDS[name]
            continue
        kind = PK_KINDS.get(route.name) if name == "pk" else name
        if kind not in OBJECT_FACTORIES:
            pytest.fail(f"{route.name}: add a factory for URL keyword {name!r} to this test")
        kwargs[name] = OBJECT_FACTORIES[kind](acme, cast).pk
    return kwargs


def _snapshot(acme):
    return {
        kind: sorted(model.objects.for_tenant(acme).values_list("pk", flat=True))
        for kind, model in MODELS.items()
    } | {
        "roles": sorted(Membership.objects.for_tenant(acme).values_list("pk", "role")),
        "credentials": sorted(
            Credential.objects.for_tenant(acme).values_list("pk", "name", "status", "updated_at")
        ),
        "deployments": sorted(Deployment.objects.for_tenant(acme).values_list("pk", "state")),
        "runs": sorted(Run.objects.for_tenant(acme).values_list("pk", "status")),
        "agents": sorted(
            Agent.objects.for_tenant(acme).values_list("pk", "group_id", "revoked_at")
        ),
        "keys": sorted(RegistrationKey.objects.for_tenant(acme).values_list("pk", "expires_at")),
    }


def test_the_generated_isolation_tests_cover_the_api_and_the_portal():
    assert any(route.is_api for route in ROUTES)
    assert any(not route.is_api for route in ROUTES)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_outsider_gets_404_on_every_method_of_another_organizations_route(
    route, acme, cast, client, api, globex
):
    kwargs = _object_kwargs(route, acme, cast)
    url = reverse(route.name, kwargs={"org": acme.slug, **kwargs})
    before = _snapshot(acme)
    client.force_login(cast["outsider"])
    callers = [client, api(cast["outsider"], globex)] if route.is_api else [client]
    for caller in callers:
        for method in METHODS:
            response = getattr(caller, method)(url)
            assert response.status_code == 404, f"{method.upper()} {url} -> {response.status_code}"
    assert _snapshot(acme) == before


OBJECT_ROUTES = [r for r in ROUTES if set(r.kwargs) - {"org", *SHARED_KEYWORDS}]


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=lambda r: r.name)
def test_outsider_gets_404_for_another_organizations_object_under_their_own_organization(
    route, acme, cast, client, api, globex
):
    kwargs = _object_kwargs(route, acme, cast)
    url = reverse(route.name, kwargs={"org": globex.slug, **kwargs})
    before = _snapshot(acme)
    client.force_login(cast["outsider"])
    callers = [client, api(cast["outsider"], globex)] if route.is_api else [client]
    for caller in callers:
        statuses = {method: getattr(caller, method)(url).status_code for method in METHODS}
        # 404 for the object; 405 only for a method the route does not have at all.
        assert set(statuses.values()) <= {404, 405}, f"{url}: {statuses}"
        assert 404 in statuses.values(), f"{url}: {statuses}"
    assert _snapshot(acme) == before
