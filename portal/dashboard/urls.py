from django.urls import path

from portal.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("o/<slug:org>/", views.index, name="index"),
]
