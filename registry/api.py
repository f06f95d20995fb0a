"""`/api/v1/workflows/` and `/api/v1/blueprints/`: thin views over registry services."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.response import Response

from dacproject.api import query_filters
from orchestration import engine
from orchestration import selectors as instance_selectors
from orchestration.serializers import InstanceDetailSerializer

from . import selectors, services
from .discovery.chains import suggest_chains
from .discovery.matching import workflows_match
from .discovery.serializers import (
    ChainListSerializer,
    MatchListSerializer,
    MatchQuerySerializer,
    SuggestChainRequestSerializer,
)
from .serializers import ApplyReportSerializer, RunRequestSerializer, WorkflowDetailSerializer, WorkflowSerializer
from .spec.normalize import WORKFLOW_ID_RE, WORKFLOW_TYPES
from .spec.triggers import TRIGGER_TYPES

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="a key seen in the last 24 h returns the instance it started (with the header "
                "Idempotent-Replayed: true) and starts nothing")
DEFINITION_BODY = {"application/json": OpenApiTypes.OBJECT, "application/yaml": OpenApiTypes.STR}


def definition_text(request):
    """The raw body and its format: JSON unless the content type says YAML."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError("the body must be UTF-8 text") from exc
    if not text.strip():
        raise ParseError("the body is empty: send a workflow definition as JSON or YAML")
    return text, ("yaml" if content_type in YAML_TYPES else "json")


def apply_body(request, *, expect):
    text, fmt = definition_text(request)
    compiled = services.compile_source(text, file=f"<request body ({fmt})>", fmt=fmt)
    if compiled.kind != expect:
        raise ParseError(f"this body is a {compiled.kind}; send it to /api/v1/{compiled.kind}s/")
    return services.definitions_apply(compiled=compiled, actor=request.user)


def workflow_or_404(key):
    """The registered definition `key`, or a 404 in the envelope (also for a malformed id)."""
    definition = selectors.definition_get(key) if WORKFLOW_ID_RE.match(key) else None
    if definition is None:
        raise NotFound(f"workflow '{key[:100]}' is not registered")
    return definition


LIST_FILTERS = ("type", "tag", "input", "output", "trigger")
CHOICES = {"type": WORKFLOW_TYPES, "trigger": TRIGGER_TYPES}
# Every id reaches the view (which answers 404 in the envelope); the documented form is the real one.
WORKFLOW_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, pattern=WORKFLOW_ID_RE.pattern,
                               description="a workflow id")


class WorkflowViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_field = "key"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        """A `type` or `trigger` outside its closed set is a 400 naming the allowed values."""
        return selectors.definition_list(**query_filters(self.request, LIST_FILTERS, choices=CHOICES))

    def get_object(self):
        return workflow_or_404(self.kwargs["id"])

    def get_serializer_class(self):
        return WorkflowSerializer if self.action == "list" else WorkflowDetailSerializer

    @extend_schema(parameters=[OpenApiParameter(name, str, enum=CHOICES.get(name),
                                                description=f"only workflows with this {name}")
                               for name in LIST_FILTERS])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[WORKFLOW_ID])
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request=DEFINITION_BODY, responses={201: WorkflowDetailSerializer, 200: WorkflowDetailSerializer})
    def create(self, request):
        """Register a workflow from a JSON or YAML body; an identical spec changes nothing (200)."""
        report = apply_body(request, expect="workflow")
        applied = report.workflows[0]
        definition = selectors.definition_get(applied["id"])
        return Response(WorkflowDetailSerializer(definition).data,
                        status=status.HTTP_201_CREATED if applied["changed"] else status.HTTP_200_OK)

    @extend_schema(request=RunRequestSerializer, parameters=[WORKFLOW_ID, IDEMPOTENCY_KEY],
                   responses={201: InstanceDetailSerializer, 202: InstanceDetailSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, id=None):
        """Start an instance of the workflow's latest version: 201, or 202 when a concurrency limit
        queues it (its `queue` says which limit and its position)."""
        workflow_or_404(id)
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = engine.instance_start(workflow=id, context=body.validated_data["context"], actor=request.user,
                                         priority=body.validated_data["priority"],
                                         idempotency_key=request.headers.get("Idempotency-Key"))
        replayed = getattr(instance, "replayed", False)
        instance = instance_selectors.instance_get(instance.id)
        code = status.HTTP_202_ACCEPTED if instance.status == "queued" else status.HTTP_201_CREATED
        response = Response(InstanceDetailSerializer(instance).data, status=code)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    # List-level actions: the router puts these routes before `{id}/`, so they are not read as ids.
    @extend_schema(parameters=[MatchQuerySerializer], responses={200: MatchListSerializer})
    @action(detail=False, methods=["get"])
    def match(self, request):
        """Registered workflows ranked for a free-text task, best first (DAC_MATCHER: keyword or llm)."""
        query = MatchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response({"matches": [m.as_dict() for m in workflows_match(query.validated_data["task"])]})

    @extend_schema(request=SuggestChainRequestSerializer, responses={200: ChainListSerializer})
    @action(detail=False, methods=["post"], url_path="suggest-chain")
    def suggest_chain(self, request):
        """Chains of workflows from the available `inputs` to the `goal` capability, shortest first."""
        body = SuggestChainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response({"chains": suggest_chains(inputs=body.validated_data["inputs"],
                                                  goal=body.validated_data["goal"])})


class BlueprintViewSet(viewsets.ViewSet):
    @extend_schema(request=DEFINITION_BODY, responses={200: ApplyReportSerializer})
    def create(self, request):
        """Apply a whole blueprint (DESIGN §3) in one transaction."""
        report = apply_body(request, expect="blueprint")
        return Response(ApplyReportSerializer(report.as_dict()).data)
