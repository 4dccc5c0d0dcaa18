"""Manage > Agents: the organization's on-premise agents and groups.

Everyone in the organization sees the list (read-only); admins and owners add agents (the
registration key is shown once), make new keys, revoke, move agents and make groups.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.agents import selectors, services
from portal.tenancy.access import tenant_view
from portal.tenancy.permissions import Perm


def _errors(error: ValidationError) -> list[str]:
    return [str(message) for message in error.messages]


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _page(request, *, issued=None, errors=(), status=200):
    organization = request.organization
    groups = list(selectors.list_groups(organization))
    statuses = {group.pk: selectors.group_status(group) for group in groups}
    return render(
        request,
        "agents/agents.html",
        {
            "agents": selectors.list_agents(organization),
            "groups": [(group, statuses[group.pk]) for group in groups],
            "issued": issued,
            "errors": errors,
            "portal_url": request.build_absolute_uri("/").rstrip("/"),
        },
        status=status,
    )


@tenant_view(write_perm=Perm.MANAGE_AGENTS)
@require_http_methods(["GET", "POST"])
def agents(request):
    """The agents and groups; POST adds an agent and shows its registration key once."""
    if request.method == "GET":
        return _page(request)
    try:
        issued = services.create_agent(
            request.organization,
            actor=request.membership,
            name=request.POST.get("name", ""),
            group_id=_int(request.POST.get("group")),
        )
    except ValidationError as error:
        return _page(request, errors=_errors(error), status=400)
    messages.success(request, f"Agent {issued.agent.name} added.")
    return _page(request, issued=issued)


@tenant_view(write_perm=Perm.MANAGE_AGENTS)
@require_POST
def registration_key(request, agent_id: int):
    """A new registration key for an agent, shown once."""
    try:
        issued = services.new_registration_key(
            request.organization, actor=request.membership, agent_id=agent_id
        )
    except ValidationError as error:
        return _page(request, errors=_errors(error), status=400)
    return _page(request, issued=issued)


@tenant_view(write_perm=Perm.MANAGE_AGENTS)
@require_POST
def revoke(request, agent_id: int):
    agent = services.revoke_agent(request.organization, actor=request.membership, agent_id=agent_id)
    messages.success(request, f"Agent {agent.name} revoked: it can no longer connect.")
    return redirect("agents:list", org=request.organization.slug)


@tenant_view(write_perm=Perm.MANAGE_AGENTS)
@require_POST
def move(request, agent_id: int):
    selectors.access_agent_by_id(request.organization, agent_id)  # 404 first
    group_id = _int(request.POST.get("group"))
    if group_id is None:
        messages.error(request, "Choose a group.")
    else:
        agent = services.move_agent(
            request.organization, actor=request.membership, agent_id=agent_id, group_id=group_id
        )
        messages.success(request, f"Agent {agent.name} is now in group {agent.group.name}.")
    return redirect("agents:list", org=request.organization.slug)


@tenant_view(write_perm=Perm.MANAGE_AGENTS)
@require_POST
def new_group(request):
    try:
        group = services.create_group(
            request.organization, actor=request.membership, name=request.POST.get("name", "")
        )
    except ValidationError as error:
        return _page(request, errors=_errors(error), status=400)
    messages.success(request, f"Agent group {group.name} created.")
    return redirect("agents:list", org=request.organization.slug)
