"""`/api/v1/escalations/` (DESIGN §8): list with filters, detail, `resolve/`, `assign/`.
Every write goes through the governance services, which check who may act."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from dacproject.api import query_filters
from dacproject.ids import as_uuid

from . import selectors, services
from .states import EscalationLevel, EscalationStatus

FILTERS = ("status", "level", "type", "workflow", "instance")
CHOICES = {"status": EscalationStatus.values, "level": EscalationLevel.values}
# Every id reaches the view (which answers 404 in the envelope); the documented form is the real one.
ESCALATION_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="an escalation id")


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=100, help_text="approve | reject | acknowledge | <option>")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000,
                                    help_text="why; required (non-blank) with reject")


class AssignSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150, help_text="username of the new assignee")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class EscalationViewSet(viewsets.GenericViewSet):
    lookup_value_regex = "[^/]+"

    def get_serializer_class(self):
        return AssignSerializer if self.action == "assign" else ResolveSerializer

    def get_queryset(self):
        filters = query_filters(self.request, FILTERS, choices=CHOICES, ids=("instance",))
        query = selectors.escalations_filtered(**filters)
        decidable = self.request.query_params.get("decidable", "false")
        if decidable not in ("1", "true", "0", "false"):
            raise ValidationError({"decidable": ["must be true or false"]})
        if decidable in ("1", "true"):
            query = selectors.inbox_order(selectors.decidable_by(self.request.user, query))
        return query

    @extend_schema(parameters=[*(OpenApiParameter(name, str, enum=CHOICES.get(name)) for name in FILTERS),
                               OpenApiParameter("decidable", bool, description="only those you may decide")],
                   responses=OpenApiTypes.OBJECT)
    def list(self, request):
        """Escalations, newest first (with `decidable=true`: yours to decide, open first, by deadline)."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([selectors.escalation_as_dict(e) for e in page])

    @extend_schema(parameters=[ESCALATION_ID], responses=OpenApiTypes.OBJECT)
    def retrieve(self, request, pk=None):
        return Response(selectors.escalation_as_dict(_get(pk)))

    @extend_schema(request=ResolveSerializer, parameters=[ESCALATION_ID], responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """Decide: approve, reject (vetoes), acknowledge, or one of the escalation's options."""
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # The service finds (or 404s) the escalation under its lock; it is read once more to answer.
        services.escalation_decide(escalation_id=pk, decision=body.validated_data["resolution"],
                                   comment=body.validated_data["comment"], actor=request.user)
        return Response(selectors.escalation_as_dict(_get(pk)))

    @extend_schema(request=AssignSerializer, parameters=[ESCALATION_ID], responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Reassign to a user, who may then decide it."""
        body = AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.escalation_assign(escalation_id=pk, user=body.validated_data["user"],
                                   comment=body.validated_data["comment"], actor=request.user)
        return Response(selectors.escalation_as_dict(_get(pk)))


def _get(pk):
    key = as_uuid(pk)
    escalation = selectors.escalations_query().filter(id=key).first() if key else None
    if escalation is None:
        raise NotFound(f"escalation '{pk}' not found")
    return escalation
