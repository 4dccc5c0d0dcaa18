"""Portal pages (not API endpoints) for managing personal API tokens."""

from django.urls import path

from portal.api import views

app_name = "api_tokens"

urlpatterns = [
    path("o/<slug:org>/settings/tokens/", views.tokens, name="list"),
    path("o/<slug:org>/settings/tokens/<int:token_id>/revoke/", views.revoke, name="revoke"),
]
