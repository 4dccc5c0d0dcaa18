from django.urls import path

from portal.vault import views

app_name = "vault"

urlpatterns = [
    path("o/<slug:org>/manage/apps/", views.apps, name="apps"),
    path(
        "o/<slug:org>/manage/apps/<slug:application>/credentials/new/",
        views.credential_new,
        name="credential_new",
    ),
    path(
        "o/<slug:org>/manage/apps/<slug:application>/credentials/check/",
        views.credential_check,
        name="credential_check",
    ),
    path(
        "o/<slug:org>/manage/credentials/<int:credential_id>/",
        views.credential_detail,
        name="credential",
    ),
    path(
        "o/<slug:org>/manage/credentials/<int:credential_id>/check/",
        views.credential_detail_check,
        name="credential_detail_check",
    ),
    path(
        "o/<slug:org>/manage/credentials/<int:credential_id>/validate/",
        views.credential_validate,
        name="credential_validate",
    ),
    path(
        "o/<slug:org>/manage/credentials/<int:credential_id>/delete/",
        views.credential_delete,
        name="credential_delete",
    ),
]
