"""API endpoints of the vault: applications (the connector registry) and credentials.

Same services as the Manage > App pages. Secret fields are write-only: responses show
``{"personal_access_token": "••••abcd"}``.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from portal.applications import declarations
from portal.tenancy.access import TenantScopedMixin
from portal.tenancy.idempotency import idempotent
from portal.tenancy.permissions import Perm
from portal.vault import selectors, services
from portal.vault.models import Credential, CredentialEvent


class ApplicationViewSet(viewsets.ViewSet):
    """Installed applications with their credential fields, actions (with JSON schemas),
    resource functions and webhook events."""

    lookup_field = "name"
    lookup_value_regex = r"[a-z0-9_-]+"

    @extend_schema(
        responses=inline_serializer("Application", {"name": serializers.CharField()}, many=True)
    )
    def list(self, request):
        return Response(
            [declarations.describe(app.name) for app in declarations.all_applications()]
        )

    @extend_schema(
        responses=inline_serializer("ApplicationDetail", {"name": serializers.CharField()})
    )
    def retrieve(self, request, name: str):
        try:
            return Response(declarations.describe(name))
        except ValidationError as error:  # unknown application
            raise Http404(error.messages[0]) from None


class SecretsField(serializers.DictField):
    """Write: ``{field: value}``. Read: ``{field: "••••" + last 4}``; never the value."""

    child = serializers.CharField(allow_blank=True, trim_whitespace=False)

    def get_attribute(self, instance):
        return instance.masked_secrets()

    def to_representation(self, value):
        return dict(value)


class CredentialSerializer(serializers.ModelSerializer):
    secrets = SecretsField(
        required=False,
        help_text="Secret fields. Write-only values; responses show only a masked form.",
    )
    fields = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    created_by = serializers.EmailField(
        source="created_by.email", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Credential
        fields = [
            "id", "uid", "application", "type", "name", "fields", "secrets", "status",
            "status_message", "checked_at", "validated_at", "account", "created_by",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "uid", "status", "status_message", "checked_at", "validated_at", "account",
            "created_by", "created_at", "updated_at",
        ]  # fmt: skip
        extra_kwargs = {"type": {"default": "rest"}}


class CredentialUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    fields = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False
    )


class ConnectionCheckSerializer(serializers.Serializer):
    application = serializers.CharField()
    type = serializers.CharField(default="rest")
    fields = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False
    )


class ValidationOutcomeSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    account = serializers.DictField()
    status = serializers.CharField(allow_null=True)


class CredentialEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = CredentialEvent
        fields = ["id", "action", "actor", "detail", "created_at", "credential_name", "application"]


def _outcome(outcome) -> dict:
    return ValidationOutcomeSerializer(
        {
            "ok": outcome.ok,
            "message": outcome.message,
            "account": outcome.account,
            "status": outcome.status,
        }
    ).data


class CredentialViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """The organization's credentials. ``POST .../validate/`` checks one against its
    application and records the result; ``POST .../check/`` checks values without saving."""

    serializer_class = CredentialSerializer
    write_permission = Perm.CHANGE

    def get_queryset(self):
        if self.is_schema_generation:
            return Credential.objects.none()
        return selectors.list_credentials(
            self.organization, application=self.request.query_params.get("application")
        )

    @extend_schema(
        parameters=[OpenApiParameter("application", str, description="Only this application.")]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @idempotent
    def create(self, request, org: str):
        serializer = CredentialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        credential = services.create_credential(
            self.organization,
            actor=self.membership,
            application=data["application"],
            type=data.get("type", "rest"),
            name=data["name"],
            fields=data.get("fields"),
            secrets=data.get("secrets"),
        )
        return Response(CredentialSerializer(credential).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CredentialUpdateSerializer, responses=CredentialSerializer)
    def partial_update(self, request, org: str, pk: str):
        credential = self.get_object()
        serializer = CredentialUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credential = services.update_credential(
            self.organization,
            actor=self.membership,
            credential_id=credential.pk,
            **serializer.validated_data,
        )
        return Response(CredentialSerializer(credential).data)

    def destroy(self, request, org: str, pk: str):
        credential = self.get_object()
        services.delete_credential(
            self.organization, actor=self.membership, credential_id=credential.pk
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=ValidationOutcomeSerializer)
    @action(detail=True, methods=["post"])
    def validate(self, request, org: str, pk: str):
        credential = self.get_object()
        outcome = services.validate_credential(
            self.organization, actor=self.membership, credential_id=credential.pk
        )
        return Response(_outcome(outcome))

    @extend_schema(request=ConnectionCheckSerializer, responses=ValidationOutcomeSerializer)
    @action(detail=False, methods=["post"])
    def check(self, request, org: str):
        serializer = ConnectionCheckSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = services.check_connection(
            self.organization, actor=self.membership, **serializer.validated_data
        )
        return Response(_outcome(outcome))

    @extend_schema(request=None, responses=CredentialEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, org: str, pk: str):
        credential = self.get_object()
        page = self.paginate_queryset(
            selectors.list_events(self.organization, credential=credential)
        )
        return self.get_paginated_response(CredentialEventSerializer(page, many=True).data)


class ExecuteActionSerializer(serializers.Serializer):
    credential = serializers.IntegerField(help_text="The stored credential to call with.")
    filters = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(allow_blank=True), min_length=2,
                                    max_length=2),
        required=False,
        default=list,
        help_text='Action-filter rows, e.g. [["count", "20"], ["status", "active"]].',
    )  # fmt: skip
    document = serializers.JSONField(
        required=False, allow_null=True, help_text="The JSON body, for actions that take one."
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=1000, help_text="Most items a list collects."
    )


class ActionOutcomeSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    status = serializers.IntegerField(allow_null=True, help_text="The application's HTTP status.")
    message = serializers.CharField(help_text="Why it failed; empty on success.")
    data = serializers.JSONField(allow_null=True, help_text="The answer (sensitive keys redacted).")
    request = serializers.DictField(help_text="Method, URL, query (masked), status, timing.")


class ExecuteActionView(TenantScopedMixin, generics.GenericAPIView):
    """Run one action of an application now with a stored credential: the same path as the
    designer's Test step (audited on the credential; no run is created). Connector failures
    answer 200 with ``ok: false`` and the application's status, as Test step shows them."""

    serializer_class = ExecuteActionSerializer

    @extend_schema(request=ExecuteActionSerializer, responses={200: ActionOutcomeSerializer})
    @idempotent
    def post(self, request, org: str, application: str, action: str):
        # The URL names the action: an application or action that does not exist is a
        # missing resource, whatever the body says.
        try:
            app = declarations.get_application(application)
        except ValidationError:
            raise Http404("No such application.") from None
        if action not in app.actions:
            raise Http404(f"{app.display_name} has no action {action!r}.")
        serializer = ExecuteActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = services.execute_action(
            self.organization,
            actor=self.membership,
            application=application,
            action=action,
            credential_id=data["credential"],
            filters=[list(row) for row in data.get("filters") or []],
            document=data.get("document"),
            limit=data.get("limit"),
            purpose="API execute",
        )
        return Response(
            {
                "ok": outcome.ok,
                "status": outcome.status,
                "message": outcome.message,
                "data": outcome.data,
                "request": outcome.request,
            }
        )
