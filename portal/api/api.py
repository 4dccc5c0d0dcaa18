"""API endpoints of the foundation: the current user and personal API tokens."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import services
from portal.api.models import ApiToken
from portal.tenancy.access import TenantScopedMixin
from portal.tenancy.idempotency import idempotent
from portal.tenancy.permissions import Perm
from portal.tenancy.selectors import memberships_of_user


class MeMembershipSerializer(serializers.Serializer):
    organization = serializers.CharField(source="organization.slug")
    organization_name = serializers.CharField(source="organization.name")
    role = serializers.CharField()


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    memberships = MeMembershipSerializer(many=True)


class MeView(APIView):
    """The authenticated user and the organizations this request may act in."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        memberships = memberships_of_user(request.user)
        if isinstance(request.auth, ApiToken):
            memberships = memberships.filter(organization_id=request.auth.organization_id)
        user = request.user
        data = {"id": user.pk, "email": user.email, "name": user.name, "memberships": memberships}
        return Response(MeSerializer(data).data)


class ApiTokenSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="active, expired or revoked")
    revoked_reason = serializers.CharField(
        read_only=True,
        help_text="Why a token was revoked other than by you, e.g. 'removed from the "
        "organization'; empty otherwise.",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "state",
            "revoked_reason",
            "created_at",
            "expires_at",
            "last_used_at",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_in_days = serializers.IntegerField(min_value=1, default=90)


class IssuedApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret, shown this once only.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class ApiTokenViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Your personal API tokens in this organization. DELETE revokes one.

    Tokens can be created from a logged-in browser session (the portal or this API), not
    with another token: a leaked token must not be able to outlive its own revocation.
    """

    serializer_class = ApiTokenSerializer
    write_permission = Perm.VIEW  # every member may hold tokens; they act with their role

    def get_queryset(self):
        if self.is_schema_generation:
            return ApiToken.objects.none()
        return services.list_tokens(self.organization, user=self.request.user)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: IssuedApiTokenSerializer})
    @idempotent(secret_fields=("token",))
    def create(self, request, org: str):
        if isinstance(request.auth, ApiToken):
            raise PermissionDenied("Tokens cannot create tokens; create one in the portal.")
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.create_token(
            self.organization, user=request.user, **serializer.validated_data
        )
        issued.token.token = issued.secret
        return Response(IssuedApiTokenSerializer(issued.token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, org: str, pk: str):
        services.revoke_token(self.organization, user=request.user, token_id=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
