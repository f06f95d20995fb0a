from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from governance.escalations.api import EscalationViewSet
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
    path("admin/", admin.site.urls),
    path("api/v1/context/<str:scope>/<path:key>", ContextView.as_view(), name="context"),
    path("api/v1/", include(router.urls)),
    path("hooks/<path:path>", webhooks.receive, name="webhook"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
]
