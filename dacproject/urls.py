from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from governance.escalations.api import EscalationViewSet
from metrics.api import DashboardOverviewView, WorkflowMetricsView
from metrics.prometheus import metrics_view
from orchestration.api import InstanceViewSet
from orchestration.context.api import ContextView
from orchestration.events import webhooks
from orchestration.events.api import EventViewSet
from registry.api import BlueprintViewSet, WorkflowViewSet

from .api import healthz

router = DefaultRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("instances", InstanceViewSet, basename="instance")
router.register("blueprints", BlueprintViewSet, basename="blueprint")
router.register("events", EventViewSet, basename="event")
router.register("escalations", EscalationViewSet, basename="escalation")

urlpatterns = [
    # The operator's home is the dashboard (anonymous visitors go on to the admin's login).
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="home"),
    path("dashboard/", include("metrics.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/context/<str:scope>/<path:key>", ContextView.as_view(), name="context"),
    # Before the router: a `metrics` route on WorkflowViewSet can never shadow this one.
    re_path(r"^api/v1/workflows/(?P<id>[a-z0-9][a-z0-9_.-]{0,99})/metrics/$", WorkflowMetricsView.as_view(),
            name="workflow-metrics"),
    path("api/v1/dashboard/overview/", DashboardOverviewView.as_view(), name="dashboard-overview"),
    path("api/v1/", include(router.urls)),
    path("hooks/<path:path>", webhooks.receive, name="webhook"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="prometheus-metrics"),
]

# Under /api/ and /hooks/ every error is the JSON envelope (DESIGN §8), even for a URL no route matches.
handler400 = "dacproject.api.bad_request"
handler403 = "dacproject.api.permission_denied"
handler404 = "dacproject.api.page_not_found"
handler500 = "dacproject.api.server_error"
