from django.urls import path

from portal.processflows import intake, views

app_name = "processflows"

urlpatterns = [
    path("hooks/<str:hook_id>/", intake.receive, name="hook"),
    path("o/<slug:org>/processflows/", views.processflow_list, name="list"),
    path("o/<slug:org>/processflows/new/", views.processflow_designer, name="new"),
    path(
        "o/<slug:org>/processflows/<int:processflow_id>/", views.processflow_detail, name="detail"
    ),
    path(
        "o/<slug:org>/processflows/<int:processflow_id>/edit/",
        views.processflow_designer,
        name="edit",
    ),
    path(
        "o/<slug:org>/processflows/<int:processflow_id>/definition.json",
        views.processflow_definition,
        name="definition",
    ),
    path(
        "o/<slug:org>/processflows/<int:processflow_id>/state/",
        views.processflow_state,
        name="state",
    ),
    path(
        "o/<slug:org>/processflows/<int:processflow_id>/deploy/",
        views.processflow_deploy,
        name="deploy",
    ),
    path(
        "o/<slug:org>/processflows/<int:processflow_id>/undeploy/",
        views.processflow_undeploy,
        name="undeploy",
    ),
    path(
        "o/<slug:org>/processflows/<int:processflow_id>/delete/",
        views.processflow_delete,
        name="delete",
    ),
    path("o/<slug:org>/runs/", views.run_list, name="runs"),
    path("o/<slug:org>/runs/<int:run_id>/", views.run_detail, name="run"),
    path("o/<slug:org>/runs/<int:run_id>/replay/", views.run_replay, name="replay"),
    path("o/<slug:org>/events/", views.event_list, name="events"),
    path("o/<slug:org>/events/<int:event_id>/", views.event_detail, name="event"),
]
