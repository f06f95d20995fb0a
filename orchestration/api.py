"""`/api/v1/instances/`: list, detail, and lifecycle actions that call the engine's services."""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from dacproject.api import query_filters
from governance.escalations.services import step_decide

from . import engine, selectors
from .lineage import instance_lineage
from .serializers import (
    DecisionSerializer,
    InstanceDetailSerializer,
    InstanceSerializer,
    SpawnRequestSerializer,
    StepRunSerializer,
)
from .spawning.groups import spawn_group_start
from .states import InstanceStatus


class InstanceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = r"[^/.]+"  # any id reaches the view, which answers 404 in the JSON envelope

    def get_queryset(self):
        """A status outside the closed set or a malformed parent id is a 400 naming the field."""
        return selectors.instance_list(**query_filters(
            self.request, ("status", "workflow", "parent", "correlation_id"),
            choices={"status": InstanceStatus.values}, ids=("parent",)))

    def get_object(self):
        instance = selectors.instance_get(self.kwargs["pk"])
        if instance is None:
            raise NotFound(f"instance '{self.kwargs['pk']}' not found")
        return instance

    def get_serializer_class(self):
        return InstanceSerializer if self.action == "list" else InstanceDetailSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=InstanceStatus.values),
        OpenApiParameter("workflow", str, description="workflow id"),
        OpenApiParameter("parent", str, description="parent instance id"),
        OpenApiParameter("correlation_id", str, description="instances of one chain of events"),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _lifecycle(self, service, pk):
        instance = service(instance_id=self.get_object().id, actor=self.request.user)
        return Response(InstanceDetailSerializer(selectors.instance_get(instance.id)).data)

    @extend_schema(request=None, responses=InstanceDetailSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._lifecycle(engine.instance_pause, pk)

    @extend_schema(request=None, responses=InstanceDetailSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._lifecycle(engine.instance_resume, pk)

    @extend_schema(request=None, responses=InstanceDetailSerializer)
    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        return self._lifecycle(engine.instance_terminate, pk)

    @extend_schema(request=None, responses=InstanceDetailSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._lifecycle(engine.instance_retry, pk)

    @extend_schema(request=None, responses={
        200: inline_serializer("InstanceLineage", {
            "correlation_id": serializers.CharField(),
            "instance": serializers.UUIDField(help_text="the instance asked about"),
            "root": serializers.JSONField(help_text='a node: {"kind": "event"|"instance"|"escalation"|'
                                                    '"correlation", "id", ...summary, "children": [nodes]}'),
            "nodes": serializers.IntegerField(),
            "truncated": serializers.BooleanField(help_text="the correlation had more than the node cap"),
        }),
        404: OpenApiResponse(description='{"error": {"code": "not_found", ...}}'),
    })
    @action(detail=True, methods=["get"])
    def lineage(self, request, pk=None):
        """The tree of the instance's whole correlation id: events, the instances they started or
        resumed, the events those emitted, spawned children and escalations (at most 500 nodes)."""
        tree = instance_lineage(pk)
        if tree is None:
            raise NotFound(f"instance '{pk}' not found")
        return Response(tree)

    @extend_schema(request=SpawnRequestSerializer, responses={201: InstanceDetailSerializer})
    @action(detail=False, methods=["post"])
    def spawn(self, request):
        """Start an ad-hoc parent of children: all at once (`parallel`) or one after another (`pipeline`)."""
        body = SpawnRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        parent = spawn_group_start(mode=body.validated_data["mode"], children=body.validated_data["children"],
                                   context=body.validated_data["context"], priority=body.validated_data["priority"],
                                   actor=request.user)
        return Response(InstanceDetailSerializer(selectors.instance_get(parent.id)).data, status=201)

    def _decide(self, request, approve):
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = self.get_object()
        step_decide(instance_id=instance.id, step_id=body.validated_data["step"],
                    decision=(body.validated_data["option"] or "approve") if approve else "reject",
                    actor=request.user, comment=body.validated_data["comment"])
        return Response(StepRunSerializer(instance.step_runs.get(step_id=body.validated_data["step"])).data)

    @extend_schema(request=DecisionSerializer, responses=StepRunSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a step parked in waiting_approval: it runs."""
        return self._decide(request, True)

    @extend_schema(request=DecisionSerializer, responses=StepRunSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject a step parked in waiting_approval: it fails."""
        return self._decide(request, False)
