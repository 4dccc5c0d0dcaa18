from django.urls import path

from portal.tenancy import views

app_name = "tenancy"

urlpatterns = [
    path("organizations/new/", views.create_organization, name="create"),
    path("invitations/<str:token>/", views.accept_invitation, name="accept_invitation"),
    path("o/<slug:org>/members/", views.members, name="members"),
    path("o/<slug:org>/members/<int:membership_id>/role/", views.change_role, name="change_role"),
    path(
        "o/<slug:org>/members/<int:membership_id>/remove/",
        views.remove_member,
        name="remove_member",
    ),
    path(
        "o/<slug:org>/invitations/<int:invitation_id>/revoke/",
        views.revoke_invitation,
        name="revoke_invitation",
    ),
]
