from django.urls import path

from portal.notifications import views

app_name = "notifications"

urlpatterns = [
    path("o/<slug:org>/alerts/", views.alerts, name="alerts"),
    path("o/<slug:org>/alerts/rules/<int:rule_id>/toggle/", views.rule_toggle, name="toggle"),
    path("o/<slug:org>/alerts/rules/<int:rule_id>/delete/", views.rule_delete, name="delete"),
]
