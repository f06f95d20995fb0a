from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from orchestration.api import InstanceViewSet
from registry.api import BlueprintViewSet, WorkflowViewSet

from .api import healthz

router = DefaultRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("instances", InstanceViewSet, basename="instance")
router.register("blueprints", BlueprintViewSet, basename="blueprint")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
]
