"""`/api/v1/workflows/{id}/metrics/` and `/api/v1/dashboard/overview/`: thin views over the selectors."""
from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.models import WorkflowDefinition

from . import selectors

DEFAULT_RANGE = "7d"


def jsonable(value):
    """Money as exact decimal strings ("0.012300"), never floats."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


class WorkflowMetricsView(APIView):
    @extend_schema(
        operation_id="workflows_metrics",
        parameters=[OpenApiParameter("range", str, enum=list(selectors.RANGES), default=DEFAULT_RANGE,
                                     description="runs created in the last 24 hours, 7 or 30 days")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, id):  # noqa: A002 - the URL's name
        range_ = request.query_params.get("range", DEFAULT_RANGE)
        if range_ not in selectors.RANGES:
            raise ValidationError({"range": [f"must be one of {', '.join(selectors.RANGES)}, got {range_!r}"]})
        workflow = WorkflowDefinition.objects.filter(key=id).first()
        if workflow is None:
            raise NotFound(f"no workflow '{id}'")
        return Response(jsonable(selectors.workflow_metrics(workflow=workflow, range=range_)))


class DashboardOverviewView(APIView):
    @extend_schema(operation_id="dashboard_overview", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(jsonable(selectors.dashboard_overview()))
