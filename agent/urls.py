"""The local UI's pages."""

from django.contrib.auth import views as auth_views
from django.urls import path

from agent.local import views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="agent/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.settings_panel, name="settings"),
    path("apps/", views.app_configurations, name="apps"),
    path("apps/<str:application>/new/", views.connection_new, name="connection_new"),
    path("apps/<str:application>/check/", views.connection_check, name="connection_check"),
    path("connections/<int:connection_id>/", views.connection_edit, name="connection"),
    path(
        "connections/<int:connection_id>/check/",
        views.connection_edit_check,
        name="connection_check_stored",
    ),
    path(
        "connections/<int:connection_id>/delete/",
        views.connection_delete,
        name="connection_delete",
    ),
]
