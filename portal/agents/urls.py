from django.urls import path

from portal.agents import views

app_name = "agents"

urlpatterns = [
    path("o/<slug:org>/agents/", views.agents, name="list"),
    path("o/<slug:org>/agents/groups/", views.new_group, name="new_group"),
    path("o/<slug:org>/agents/<int:agent_id>/key/", views.registration_key, name="key"),
    path("o/<slug:org>/agents/<int:agent_id>/revoke/", views.revoke, name="revoke"),
    path("o/<slug:org>/agents/<int:agent_id>/move/", views.move, name="move"),
]
