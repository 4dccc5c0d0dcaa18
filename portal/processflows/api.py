"""API endpoints for processflows, deployments, runs and received events (same services as
the pages)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.api.scoping import TenantScopedMixin
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
from portal.processflows.views import _parse_time


class DeploymentSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = Deployment
        fields = [
            "id", "version", "agent", "state", "registration_state", "registration_message",
            "registered_url", "subscription_uri", "bad_signature_count", "last_bad_signature_at",
            "cursor", "deployed_at", "undeployed_at", "reconciled_at",
        ]  # fmt: skip


class ProcessflowSerializer(serializers.ModelSerializer):
    definition = serializers.JSONField(
        write_only=True, help_text="The flow definition: {trigger, steps} (see the docs)."
    )
    latest_version = serializers.SerializerMethodField()
    processflow_url = serializers.SerializerMethodField()
    deployment = serializers.SerializerMethodField()

    class Meta:
        model = Processflow
        fields = [
            "id", "name", "description", "trigger_type", "definition", "latest_version",
            "processflow_url", "deployment", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "trigger_type", "created_at", "updated_at"]

    def get_latest_version(self, flow) -> dict:
        latest = flow.versions.first()
        return {"number": latest.number, "definition": latest.definition} if latest else {}

    def get_processflow_url(self, flow) -> str | None:
        return processflow_url(flow) if flow.trigger_type == "webhook" else None

    def get_deployment(self, flow) -> dict | None:
        deployment = selectors.active_deployment(flow)
        return DeploymentSerializer(deployment).data if deployment else None


class ProcessflowUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    definition = serializers.JSONField(required=False)


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

    class Meta:
        model = Run
        fields = [
            "id", "uid", "processflow", "version", "event", "replay_of", "status", "attempt",
            "error", "created_at", "started_at", "finished_at", "next_attempt_at",
        ]  # fmt: skip


class RunDetailSerializer(RunSerializer):
    steps = StepRunSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "input", "output", "steps"]


class EventSerializer(serializers.ModelSerializer):
    processflow = serializers.IntegerField(source="deployment.processflow_id")

    class Meta:
        model = TriggerEvent
        fields = [
            "id",
            "processflow",
            "deployment",
            "source",
            "event_name",
            "dedupe_key",
            "received_at",
            "duplicates",
        ]


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
    version to the Cloud agent; ``undeploy`` stops it; ``deployment`` shows the registration
    state of its webhook subscription."""

    serializer_class = ProcessflowSerializer

    def get_queryset(self):
        if self.is_schema_generation:
            return Processflow.objects.none()
        return selectors.list_processflows(self.organization)

    def create(self, request, org: str):
        serializer = ProcessflowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flow = services.create_processflow(
            self.organization,
            actor=self.membership,
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
            definition=serializer.validated_data["definition"],
        )
        return Response(ProcessflowSerializer(flow).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProcessflowUpdateSerializer, responses=ProcessflowSerializer)
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

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["get"])
    def deployment(self, request, org: str, pk: str):
        flow = self.get_object()
        deployment = selectors.active_deployment(flow) or flow.deployments.first()
        if deployment is None:
            from django.http import Http404

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
        params = self.request.query_params
        flow = None
        if params.get("processflow", "").isdigit():
            flow = selectors.access_processflow_by_id(self.organization, int(params["processflow"]))
        status_filter = params.get("status")
        return selectors.list_runs(
            self.organization,
            processflow=flow,
            status=status_filter if status_filter in RunStatus.values else None,
            since=_parse_time(params.get("since", "")),
            until=_parse_time(params.get("until", "")),
        ).prefetch_related("steps")

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=RunStatus.values),
            OpenApiParameter("processflow", int),
            OpenApiParameter("since", str),
            OpenApiParameter("until", str),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={201: RunSerializer})
    @action(detail=True, methods=["post"])
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
            return TriggerEvent.objects.for_tenant(self.organization).select_related("deployment")
        return selectors.list_events(self.organization)
