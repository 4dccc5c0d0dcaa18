"""API endpoints for agents and agent groups (the same services as Manage > Agents).

Everyone in the organization may read them; adding, revoking, moving agents, making
registration keys and groups needs an admin or owner. A registration key is in the answer
that makes it, once; an agent's secret is never in any answer of this API.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.agents import selectors, services
from portal.agents.models import Agent, AgentGroup, AgentState
from portal.tenancy.access import TenantScopedMixin
from portal.tenancy.idempotency import idempotent
from portal.tenancy.permissions import Perm


class GroupRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ConfiguredApplicationSerializer(serializers.Serializer):
    application = serializers.CharField(help_text="The application's (connector's) name.")
    name = serializers.CharField(help_text="The credential's name on the agent.")
    valid = serializers.BooleanField(help_text="Whether it passed validation on the agent.")
    validated_at = serializers.CharField(allow_null=True)


class AgentSerializer(serializers.ModelSerializer):
    group = GroupRefSerializer(read_only=True)
    state = serializers.ChoiceField(
        choices=AgentState.choices,
        read_only=True,
        help_text="waiting: not registered yet; online: a heartbeat in the last 60 seconds.",
    )
    online = serializers.BooleanField(source="is_online", read_only=True)
    applications = ConfiguredApplicationSerializer(
        many=True,
        read_only=True,
        help_text="What the agent reports configured: names and validity, never a secret.",
    )

    class Meta:
        model = Agent
        fields = [
            "id", "name", "group", "state", "online", "version", "hostname", "applications",
            "created_at", "registered_at", "last_seen_at", "revoked_at",
        ]  # fmt: skip
        read_only_fields = fields


class RegistrationKeySerializer(serializers.Serializer):
    key = serializers.CharField(
        help_text="The one-time registration key (cpr_…), shown this once only."
    )
    expires_at = serializers.DateTimeField()


class IssuedAgentSerializer(AgentSerializer):
    registration_key = RegistrationKeySerializer(read_only=True)

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "registration_key"]
        read_only_fields = fields


class AgentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    group = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="An agent group's id; without it, a new group named after the agent.",
    )


class AgentMoveSerializer(serializers.Serializer):
    group = serializers.IntegerField(min_value=1, help_text="The agent group's id.")


def _issued(issued: services.IssuedKey) -> dict:
    data = dict(AgentSerializer(issued.agent).data)
    data["registration_key"] = {
        "key": issued.key,
        "expires_at": serializers.DateTimeField().to_representation(
            issued.registration_key.expires_at
        ),
    }
    return data


class AgentViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The organization's on-premise agents, with online state (a heartbeat in the last 60
    seconds), version and the applications each reports configured. Creating one answers
    its one-time registration key (valid 24 hours), shown only then."""

    serializer_class = AgentSerializer
    write_permission = Perm.MANAGE_AGENTS

    def get_queryset(self):
        if self.is_schema_generation:
            return Agent.objects.none()
        return selectors.list_agents(self.organization)

    @extend_schema(request=AgentCreateSerializer, responses={201: IssuedAgentSerializer})
    @idempotent(secret_fields=("registration_key",))
    def create(self, request, org: str):
        serializer = AgentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.create_agent(
            self.organization,
            actor=self.membership,
            name=serializer.validated_data["name"],
            group_id=serializer.validated_data.get("group"),
        )
        return Response(_issued(issued), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=AgentSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, org: str, pk: int):
        """Revoke the agent: its next request is refused (401); its runs go to the rest of
        its group."""
        agent = services.revoke_agent(self.organization, actor=self.membership, agent_id=pk)
        return Response(AgentSerializer(agent).data)

    @extend_schema(request=None, responses={201: IssuedAgentSerializer})
    @action(detail=True, methods=["post"], url_path="registration-key")
    def registration_key(self, request, org: str, pk: int):
        """A new one-time registration key for the agent (valid 24 hours; earlier unused
        keys stop working). Registering with it replaces the agent's secret."""
        issued = services.new_registration_key(
            self.organization, actor=self.membership, agent_id=pk
        )
        return Response(_issued(issued), status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentMoveSerializer, responses=AgentSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, org: str, pk: int):
        """Put the agent in another group."""
        selectors.access_agent_by_id(self.organization, pk)  # 404 before any 400
        serializer = AgentMoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = services.move_agent(
            self.organization,
            actor=self.membership,
            agent_id=pk,
            group_id=serializer.validated_data["group"],
        )
        return Response(AgentSerializer(agent).data)


class AgentGroupSerializer(serializers.ModelSerializer):
    agents = serializers.IntegerField(source="agent_count", read_only=True)
    online = serializers.SerializerMethodField()
    offline_since = serializers.SerializerMethodField()

    class Meta:
        model = AgentGroup
        fields = ["id", "name", "agents", "online", "offline_since", "created_at"]
        read_only_fields = ["id", "agents", "online", "offline_since", "created_at"]

    def _status(self, group) -> dict:
        cache = self.context.setdefault("status", {})
        if group.pk not in cache:
            cache[group.pk] = selectors.group_status(group)
        return cache[group.pk]

    def get_online(self, group) -> bool:
        """Whether at least one of its agents sent a heartbeat in the last 60 seconds."""
        return self._status(group)["online"]

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_offline_since(self, group):
        """The last heartbeat of any of its agents while none is online; null otherwise."""
        return self._status(group)["offline_since"]


class AgentGroupViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Agent groups: a processflow is deployed to the Cloud agent or to a group, whose
    agents share its work (a single agent is a group of one)."""

    serializer_class = AgentGroupSerializer
    write_permission = Perm.MANAGE_AGENTS

    def get_queryset(self):
        if self.is_schema_generation:
            return AgentGroup.objects.none()
        return selectors.list_groups(self.organization)

    @extend_schema(request=AgentGroupSerializer, responses={201: AgentGroupSerializer})
    @idempotent()
    def create(self, request, org: str):
        serializer = AgentGroupSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        group = services.create_group(
            self.organization, actor=self.membership, name=serializer.validated_data["name"]
        )
        group = selectors.access_group_by_id(self.organization, group.pk)
        return Response(AgentGroupSerializer(group).data, status=status.HTTP_201_CREATED)
