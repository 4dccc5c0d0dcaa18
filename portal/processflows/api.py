"""API endpoints for processflows, deployments, runs and received events (same services as
the pages)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from flows.schema import definition_schema
from portal.processflows import selectors, services
from portal.processflows.models import (
    Deployment,
    Processflow,
    Run,
    RunStatus,
    StepRun,
    TriggerEvent,
)
from portal.processflows.registration import processflow_url
from portal.tenancy.access import TenantScopedMixin
from portal.tenancy.idempotency import idempotent


class DeliveryVerificationSerializer(serializers.Serializer):
    """Whether a webhook deployment's recent deliveries verify: failing once its last 3
    deliveries of the last 24 hours were all rejected as unverified."""

    state = serializers.ChoiceField(
        choices=["ok", "failing_verification"],
        help_text="failing_verification: at least 3 deliveries in the last 24 hours were "
        "rejected as unverified (401) and none was accepted after them.",
    )
    rejected = serializers.IntegerField(
        help_text="Deliveries rejected as unverified in the last 24 hours since the last "
        "accepted one."
    )
    last_reason = serializers.CharField(help_text="Why the newest of them was rejected.")
    first_rejected_at = serializers.DateTimeField(allow_null=True)
    last_accepted_at = serializers.DateTimeField(
        allow_null=True, help_text="The last accepted delivery in the last 24 hours."
    )
    message = serializers.CharField(help_text="What to show while failing; empty otherwise.")


class NamedRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class DeploymentSerializer(serializers.ModelSerializer):
    """A deployment with its registration state and delivery verification (webhook) or
    schedule and cursor (polling). Give ``context["verification"]`` (from
    ``selectors.delivery_verification``) when serializing many."""

    processflow = serializers.IntegerField(source="processflow_id", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    agent = serializers.SerializerMethodField(
        help_text="cloud: the Cloud agent (the portal's workers); agent_group: the "
        "on-premise agent group in agent_group."
    )
    agent_group = NamedRefSerializer(
        read_only=True,
        allow_null=True,
        help_text="The on-premise agent group it runs on; null: the Cloud agent.",
    )
    schedule = serializers.SerializerMethodField()
    delivery_verification = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id", "processflow", "version", "agent", "agent_group", "state", "registration_state",
            "registration_message", "registered_url", "subscription_uri", "bad_signature_count",
            "last_bad_signature_at", "delivery_verification", "schedule", "cursor",
            "deployed_at", "undeployed_at", "reconciled_at",
        ]  # fmt: skip

    @extend_schema_field(serializers.ChoiceField(choices=["cloud", "agent_group"]))
    def get_agent(self, deployment) -> str:
        return "cloud" if deployment.agent_group_id is None else "agent_group"

    def get_schedule(self, deployment) -> dict | None:
        if deployment.processflow.trigger_type != "polling":
            return None
        return deployment.version.definition["trigger"]["schedule"]

    @extend_schema_field(DeliveryVerificationSerializer(allow_null=True))
    def get_delivery_verification(self, deployment) -> dict | None:
        verifications = self.context.get("verification")
        if verifications is None:
            verifications = selectors.delivery_verification(
                deployment.organization, deployments=[deployment]
            )
        verification = verifications.get(deployment.pk)
        if verification is None:
            return None  # a polling deployment
        return DeliveryVerificationSerializer(
            {
                "state": "failing_verification" if verification.failing else "ok",
                "rejected": verification.rejected,
                "last_reason": verification.last_reason,
                "first_rejected_at": verification.first_rejected_at,
                "last_accepted_at": verification.last_accepted_at,
                "message": verification.message,
            }
        ).data


@extend_schema_field(definition_schema())
class DefinitionField(serializers.JSONField):
    """A processflow definition, published in the OpenAPI document as a typed JSON Schema."""


# A complete definition that needs no credential: a polling flow with one map step.
POLLING_EXAMPLE = OpenApiExample(
    "A polling flow",
    value={
        "name": "Every five minutes",
        "description": "",
        "definition": {
            "trigger": {"type": "polling", "schedule": {"every_seconds": 300}},
            "steps": [{"name": "document", "type": "map", "mapping": {"note": "checked"}}],
        },
    },
    request_only=True,
)


class ProcessflowSerializer(serializers.ModelSerializer):
    definition = DefinitionField(
        write_only=True,
        help_text="The flow definition: the trigger and the steps (see ProcessflowDefinition).",
    )
    agent_group = serializers.IntegerField(
        source="agent_group_id",
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The on-premise agent group it is meant for (its credentials are then "
        "names on the agents); null or absent: the Cloud agent.",
    )
    latest_version = serializers.SerializerMethodField()
    processflow_url = serializers.SerializerMethodField()
    deployment = serializers.SerializerMethodField()

    class Meta:
        model = Processflow
        fields = [
            "id", "name", "description", "trigger_type", "agent_group", "definition",
            "latest_version", "processflow_url", "deployment", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "trigger_type", "created_at", "updated_at"]

    def get_latest_version(self, flow) -> dict:
        latest = flow.versions.first()
        return {"number": latest.number, "definition": latest.definition} if latest else {}

    def get_processflow_url(self, flow) -> str | None:
        return processflow_url(flow) if flow.trigger_type == "webhook" else None

    def get_deployment(self, flow) -> dict | None:
        deployments = self.context.get("deployments")
        deployment = (
            deployments.get(flow.pk)
            if deployments is not None
            else selectors.active_deployment(flow)
        )
        return DeploymentSerializer(deployment, context=self.context).data if deployment else None


class ProcessflowUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    definition = DefinitionField(required=False)
    agent_group = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Move the flow to this agent group (null: the Cloud agent); its definition "
        "is checked against the new agent.",
    )


class RunNowSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(help_text="The deployment that polls now.")
    queued = serializers.BooleanField(
        help_text="The poll reached the worker queue (false: the sweeper sends it shortly)."
    )


class StepRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepRun
        fields = [
            "position", "name", "status", "attempts", "request", "response_status", "output",
            "error", "duration_ms", "started_at", "finished_at",
        ]  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    processflow = serializers.IntegerField(source="processflow_id")
    version = serializers.IntegerField(source="version.number")
    agent = NamedRefSerializer(
        allow_null=True,
        read_only=True,
        help_text="The on-premise agent that ran it (last); null on the Cloud agent.",
    )
    waiting_for = serializers.SerializerMethodField(
        help_text='For a waiting run whose agent group has no agent online: "Waiting for '
        'agent group X, offline since …"; empty otherwise.'
    )

    class Meta:
        model = Run
        fields = [
            "id", "uid", "processflow", "version", "event", "replay_of", "status", "attempt",
            "agent", "waiting_for", "error", "created_at", "started_at", "finished_at",
            "next_attempt_at",
        ]  # fmt: skip

    def get_waiting_for(self, run) -> str:
        return selectors.waiting_for_agents(run, statuses=self.context.setdefault("groups", {}))


class RunDetailSerializer(RunSerializer):
    steps = StepRunSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "input", "output", "steps"]


class EventSerializer(serializers.ModelSerializer):
    processflow = serializers.IntegerField(source="deployment.processflow_id")
    signature_verified = serializers.SerializerMethodField(
        help_text="Webhook deliveries are stored only once their signature verified; polled "
        "records have no signature (null)."
    )

    class Meta:
        model = TriggerEvent
        fields = [
            "id",
            "processflow",
            "deployment",
            "source",
            "event_name",
            "dedupe_key",
            "signature_verified",
            "received_at",
            "duplicates",
        ]

    def get_signature_verified(self, event) -> bool | None:
        return True if event.source == TriggerEvent.Source.WEBHOOK else None


class EventDetailSerializer(EventSerializer):
    body = serializers.SerializerMethodField()

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "headers", "body"]

    def get_body(self, event) -> str:
        return bytes(event.body).decode("utf-8", errors="replace")


class ProcessflowViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Processflows. Saving a definition makes a new version; ``deploy`` deploys the latest
    version to its agent (the Cloud agent, or its ``agent_group``); ``undeploy`` stops it;
    ``deployment`` shows the registration state of its webhook subscription."""

    serializer_class = ProcessflowSerializer

    def get_queryset(self):
        if self.is_schema_generation:
            return Processflow.objects.none()
        return selectors.list_processflows(self.organization)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.action == "list" and not self.is_schema_generation:
            deployments = selectors.active_deployments(self.organization)
            context["deployments"] = deployments
            context["verification"] = selectors.delivery_verification(
                self.organization, deployments=deployments.values()
            )
        return context

    @extend_schema(examples=[POLLING_EXAMPLE])
    @idempotent
    def create(self, request, org: str):
        serializer = ProcessflowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flow = services.create_processflow(
            self.organization,
            actor=self.membership,
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
            definition=serializer.validated_data["definition"],
            agent_group=serializer.validated_data.get("agent_group_id"),
        )
        return Response(ProcessflowSerializer(flow).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ProcessflowUpdateSerializer,
        responses=ProcessflowSerializer,
        examples=[POLLING_EXAMPLE],
    )
    def partial_update(self, request, org: str, pk: str):
        flow = self.get_object()
        serializer = ProcessflowUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flow = services.update_processflow(
            self.organization,
            actor=self.membership,
            processflow_id=flow.pk,
            **serializer.validated_data,
        )
        return Response(ProcessflowSerializer(flow).data)

    def destroy(self, request, org: str, pk: str):
        flow = self.get_object()
        services.delete_processflow(
            self.organization, actor=self.membership, processflow_id=flow.pk
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={201: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    @idempotent
    def deploy(self, request, org: str, pk: str):
        flow = self.get_object()
        deployment = services.deploy(
            self.organization, actor=self.membership, processflow_id=flow.pk
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def undeploy(self, request, org: str, pk: str):
        flow = self.get_object()
        deployment = services.undeploy(
            self.organization, actor=self.membership, processflow_id=flow.pk
        )
        return Response(DeploymentSerializer(deployment).data)

    @extend_schema(request=None, responses={202: RunNowSerializer})
    @action(detail=True, methods=["post"])
    @idempotent
    def run(self, request, org: str, pk: str):
        """Run a deployed polling flow now (poll its source, or make one tick), besides its
        schedule; the runs it starts appear in ``runs``."""
        flow = self.get_object()
        deployment, queued = services.run_now(
            self.organization, actor=self.membership, processflow_id=flow.pk
        )
        return Response(
            RunNowSerializer({"deployment": deployment.pk, "queued": queued}).data,
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["get"])
    def deployment(self, request, org: str, pk: str):
        flow = self.get_object()
        deployment = selectors.active_deployment(flow) or flow.deployments.first()
        if deployment is None:
            raise Http404("This processflow has never been deployed.")
        return Response(DeploymentSerializer(deployment).data)


class RunViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Run history. Filter with ``status``, ``processflow``, ``since`` and ``until`` (ISO 8601).
    ``replay`` runs a failed run again."""

    serializer_class = RunSerializer

    def get_serializer_class(self):
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    def get_queryset(self):
        if self.is_schema_generation:
            return Run.objects.none()
        if self.action != "list":
            return selectors.list_runs(self.organization).prefetch_related("steps")
        filters = selectors.run_filters(self.organization, self.request.query_params)
        if filters.problems:
            raise ValidationError(filters.problems)
        return selectors.list_runs(self.organization, **filters.as_kwargs())

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=RunStatus.values, description="Only this status."),
            OpenApiParameter("processflow", int, description="Only runs of this processflow."),
            OpenApiParameter("since", str, description="Created at or after (ISO 8601)."),
            OpenApiParameter("until", str, description="Created before (ISO 8601)."),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={201: RunSerializer})
    @action(detail=True, methods=["post"])
    @idempotent
    def replay(self, request, org: str, pk: str):
        run = self.get_object()
        new = services.replay_run(self.organization, actor=self.membership, run_id=run.pk)
        return Response(RunSerializer(new).data, status=status.HTTP_201_CREATED)


class EventViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Received trigger events (verified webhook deliveries and polled records)."""

    serializer_class = EventSerializer

    def get_serializer_class(self):
        return EventDetailSerializer if self.action == "retrieve" else EventSerializer

    def get_queryset(self):
        if self.is_schema_generation:
            return TriggerEvent.objects.none()
        if self.action == "retrieve":
            return TriggerEvent.objects.for_tenant(self.organization).select_related(
                "deployment__processflow"
            )
        flow_id = self.request.query_params.get("processflow", "")
        if flow_id and not (flow_id.isascii() and flow_id.isdigit()):
            raise ValidationError({"processflow": ["A processflow is given by its id."]})
        flow = (
            selectors.access_processflow_by_id(self.organization, int(flow_id)) if flow_id else None
        )
        return selectors.list_events(self.organization, processflow=flow)

    @extend_schema(
        parameters=[
            OpenApiParameter("processflow", int, description="Only events of this processflow.")
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)
