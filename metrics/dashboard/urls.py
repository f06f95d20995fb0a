from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("data/overview.json", views.overview_json, name="overview-data"),
    path("workflows/", views.workflows, name="workflows"),
    path("workflows/<str:key>/", views.workflow, name="workflow"),
    path("workflows/<str:key>/data.json", views.workflow_json, name="workflow-data"),
    path("instances/<uuid:instance_id>/", views.instance, name="instance"),
    path("instances/<uuid:instance_id>/data.json", views.instance_json, name="instance-data"),
]
