"""Reads of agents and groups: lists, one by id (the same 404 for missing and not yours),
what a group's agents report configured, and whether a group is online."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, F, Q, QuerySet
from django.shortcuts import get_object_or_404

from portal.agents.models import Agent, AgentGroup
from portal.tenancy.models import Organization


def list_groups(organization: Organization | int) -> QuerySet[AgentGroup]:
    """The organization's agent groups, with how many active agents each has."""
    return (
        AgentGroup.objects.for_tenant(organization)
        .annotate(agent_count=Count("agents", filter=Q(agents__revoked_at__isnull=True)))
        .order_by("name", "pk")
    )


def access_group_by_id(organization: Organization | int, group_id: int) -> AgentGroup:
    return get_object_or_404(list_groups(organization), pk=group_id)


def list_agents(organization: Organization | int) -> QuerySet[Agent]:
    """The organization's agents, revoked ones last."""
    return (
        Agent.objects.for_tenant(organization)
        .select_related("group")
        .order_by(F("revoked_at").asc(nulls_first=True), "name", "pk")
    )


def access_agent_by_id(organization: Organization | int, agent_id: int) -> Agent:
    return get_object_or_404(list_agents(organization), pk=agent_id)


def active_agents(group: AgentGroup) -> list[Agent]:
    """The group's agents that are not revoked."""
    return list(
        Agent.objects.for_tenant(group.organization_id).filter(group=group, revoked_at__isnull=True)
    )


def reported_credential(group: AgentGroup, application: str, name: str) -> list[dict]:
    """What the group's agents report about their credential ``name`` of ``application``:
    one entry per agent that has it (``valid``, ``validated_at``, ``agent``)."""
    found = []
    for agent in active_agents(group):
        for entry in agent.applications or []:
            if entry.get("application") == application and entry.get("name") == name:
                found.append({**entry, "agent": agent.name})
    return found


def group_status(group: AgentGroup) -> dict:
    """``{"online": bool, "agents": n, "offline_since": datetime | None}``: offline since
    the last heartbeat of any of its agents (None when none was ever seen)."""
    agents = active_agents(group)
    online = any(agent.is_online for agent in agents)
    seen = [agent.last_seen_at for agent in agents if agent.last_seen_at is not None]
    offline_since: datetime | None = None if online or not seen else max(seen)
    return {"online": online, "agents": len(agents), "offline_since": offline_since}


def waiting_message(group: AgentGroup) -> str:
    """What a queued run of ``group`` waits for, when no agent of it is online; "" else."""
    status = group_status(group)
    if status["online"]:
        return ""
    if status["offline_since"] is None:
        return f"Waiting for agent group {group.name}: no agent of it has connected yet."
    return (
        f"Waiting for agent group {group.name}, offline since "
        f"{status['offline_since']:%Y-%m-%d %H:%M} UTC."
    )


def group_applications(group: AgentGroup) -> list[dict]:
    """The applications the group's processflows use (deployed, or the latest version of a
    flow meant for it) and those a definition asked of it: ``[{"application", "title"}]``,
    for the agents' Settings panel."""
    from flows.definition import application as connector
    from portal.processflows.models import Deployment, Processflow

    definitions = [
        version.definition
        for flow in Processflow.objects.for_tenant(group.organization_id)
        .filter(agent_group=group)
        .prefetch_related("versions")
        for version in list(flow.versions.all())[:1]
    ]
    definitions += list(
        Deployment.objects.for_tenant(group.organization_id)
        .filter(agent_group=group, state=Deployment.State.ACTIVE)
        .values_list("version__definition", flat=True)
    )
    names = set(group.requested_applications or [])
    for definition in definitions:
        trigger = definition.get("trigger") or {}
        if trigger.get("application"):
            names.add(trigger["application"])
        if (trigger.get("source") or {}).get("application"):
            names.add(trigger["source"]["application"])
        names |= {s["application"] for s in definition.get("steps", []) if s.get("application")}
    found = []
    for name in sorted(names):
        try:
            found.append({"application": name, "title": connector(name).display_name})
        except LookupError:
            continue
    return found
