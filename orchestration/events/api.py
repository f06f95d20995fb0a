"""`/api/v1/events/`: publish one event or a bulk list (DESIGN §6.1), and the history."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import ParseError
from rest_framework.response import Response

from dacproject.api import query_filters

from . import selectors, services

# One event to publish (documentation of the body; the service validates it).
EVENT_IN = {
    "type": "object",
    "required": ["event_type"],
    "properties": {
        "event_type": {"type": "string", "maxLength": 200, "example": "pr_created"},
        "payload": {"type": "object"},
        "priority": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 9},
                               {"type": "string", "enum": ["low", "normal", "high", "critical"]}]},
        "correlation_id": {"type": "string", "maxLength": 200},
        "ttl_seconds": {"type": "integer", "minimum": 1},
    },
}


class PublishedSerializer(serializers.Serializer):
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    correlation_id = serializers.CharField()
    timestamp = serializers.DateTimeField()


class EventViewSet(viewsets.GenericViewSet):
    serializer_class = PublishedSerializer
    filters = ("type", "correlation_id", "source_instance", "since")

    def get_queryset(self):
        return selectors.event_list(**query_filters(self.request, self.filters, ids=("source_instance",)))

    @extend_schema(parameters=[OpenApiParameter(name, str) for name in filters], responses=OpenApiTypes.OBJECT)
    def list(self, request):
        """Event history, newest first, each with what it matched and whether it expired."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(selectors.events_as_dicts(page))

    @extend_schema(request={"application/json": {"oneOf": [
        EVENT_IN, {"type": "array", "items": EVENT_IN, "maxItems": services.MAX_BULK}]}},
        responses={201: PublishedSerializer})
    def create(self, request):
        """Publish one event (object) or up to 1,000 (list) in one transaction: all or none."""
        body = request.data
        if not isinstance(body, (dict, list)):
            raise ParseError("send one event object or a list of them")
        bulk = isinstance(body, list)
        events = services.events_publish(events=body if bulk else [body], actor=request.user, bulk=bulk)
        published = [selectors.published_as_dict(e) for e in events]
        return Response({"events": published} if bulk else published[0], status=status.HTTP_201_CREATED)
