"""API endpoints for organizations, memberships and invitations (same services as the pages)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from portal.tenancy import selectors, services
from portal.tenancy.access import TenantScopedMixin, access_membership, token_organization_id
from portal.tenancy.idempotency import idempotent
from portal.tenancy.models import Invitation, Membership, Organization, Role
from portal.tenancy.permissions import Perm


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role in this organization.")

    class Meta:
        model = Organization
        fields = ["name", "slug", "created_at", "role"]
        read_only_fields = ["created_at", "role"]

    def get_role(self, organization) -> str:
        return self.context["roles"].get(organization.pk, "")


class UserSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSummarySerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = ["id", "user", "created_at"]


class RoleChangeSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.EmailField(
        source="invited_by.email", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at"]
        read_only_fields = ["id", "invited_by", "created_at", "expires_at"]


class IssuedInvitationSerializer(InvitationSerializer):
    url = serializers.CharField(read_only=True, help_text="The invitation link, shown once.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "url"]


class OrganizationViewSet(viewsets.GenericViewSet):
    """Organizations you belong to (with a token: only the token's organization)."""

    serializer_class = OrganizationSerializer
    queryset = Organization.objects.none()  # only for the schema's types; see _memberships
    lookup_field = "slug"
    lookup_url_kwarg = "org"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"  # a slug, as in every other route's <slug:org>

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if "org" in kwargs:  # a detail route: resolve the tenant like every tenant route
            self.membership = access_membership(
                request.user, kwargs["org"], token_organization_id=token_organization_id(request)
            )

    def _memberships(self):
        memberships = selectors.memberships_of_user(self.request.user)
        token_organization = token_organization_id(self.request)
        if token_organization is not None:
            memberships = memberships.filter(organization_id=token_organization)
        return memberships

    def list(self, request):
        memberships = list(self._memberships())
        page = self.paginate_queryset([m.organization for m in memberships])
        roles = {m.organization_id: m.role for m in memberships}
        return self.get_paginated_response(
            self.get_serializer(page, many=True, context={"roles": roles}).data
        )

    def retrieve(self, request, org: str):
        organization = self.membership.organization
        roles = {organization.pk: self.membership.role}
        return Response(self.get_serializer(organization, context={"roles": roles}).data)

    def create(self, request):
        if token_organization_id(request) is not None:
            raise PermissionDenied(
                "A token acts in one organization; create organizations in the portal."
            )
        serializer = self.get_serializer(data=request.data, context={"roles": {}})
        serializer.is_valid(raise_exception=True)
        organization = services.create_organization(
            name=serializer.validated_data["name"],
            slug=serializer.validated_data["slug"],
            owner=request.user,
        )
        data = self.get_serializer(organization, context={"roles": {organization.pk: "owner"}}).data
        return Response(data, status=status.HTTP_201_CREATED)


class MembershipViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Members of an organization. Change a role with PATCH; remove (or leave) with DELETE."""

    serializer_class = MembershipSerializer

    def get_write_permission(self) -> Perm:
        # Leaving needs no more than membership; the service checks removing others.
        return Perm.VIEW if self.action == "destroy" else Perm.MANAGE_MEMBERS

    def get_queryset(self):
        if self.is_schema_generation:
            return Membership.objects.none()
        return selectors.list_memberships(self.organization)

    @extend_schema(request=RoleChangeSerializer, responses=MembershipSerializer)
    def partial_update(self, request, org: str, pk: str):
        self.get_object()  # another tenant's or a missing member is a 404 before any 400
        serializer = RoleChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.change_role(
            self.organization,
            actor=self.membership,
            membership_id=int(pk),
            role=serializer.validated_data["role"],
        )
        return Response(MembershipSerializer(membership).data)

    def destroy(self, request, org: str, pk: str):
        services.remove_member(self.organization, actor=self.membership, membership_id=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Pending invitations. POST invites (the response carries the link, once); DELETE
    revokes."""

    serializer_class = InvitationSerializer
    write_permission = Perm.MANAGE_MEMBERS

    def get_queryset(self):
        if self.is_schema_generation:
            return Invitation.objects.none()
        return selectors.list_pending_invitations(self.organization).select_related("invited_by")

    @extend_schema(request=InvitationSerializer, responses={201: IssuedInvitationSerializer})
    @idempotent
    def create(self, request, org: str):
        serializer = InvitationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.invite_member(
            self.organization,
            actor=self.membership,
            email=serializer.validated_data["email"],
            role=serializer.validated_data.get("role", Role.MEMBER),
        )
        issued.invitation.url = issued.url
        return Response(
            IssuedInvitationSerializer(issued.invitation).data, status=status.HTTP_201_CREATED
        )

    def destroy(self, request, org: str, pk: str):
        services.revoke_invitation(self.organization, actor=self.membership, invitation_id=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
