"""`/api/v1/context/{scope}/{key}` (DESIGN §6.5): GET, PUT (`If-Match: <version>` -> 412 on a
mismatch), DELETE. Each answer carries the version as an ETag."""
import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services

_VERSION = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')
IF_MATCH = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=False,
                            description="write or delete only at this version (0: the key is absent)")


class EntrySerializer(serializers.Serializer):
    key = serializers.CharField()
    scope = serializers.CharField()
    value = serializers.JSONField()
    version = serializers.IntegerField()
    expires_at = serializers.DateTimeField(allow_null=True)


class WriteSerializer(serializers.Serializer):
    value = serializers.JSONField(help_text="any JSON value")
    ttl_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1)


def _if_version(request):
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = _VERSION.match(header.strip())
    if not match:
        raise ValidationError({"If-Match": ["must be a version number, e.g. If-Match: 3"]})
    return int(match.group(1))


def _answer(entry, code=status.HTTP_200_OK):
    return Response(entry.as_dict(), status=code, headers={"ETag": f'"{entry.version}"'})


class ContextView(APIView):
    @extend_schema(responses=EntrySerializer)
    def get(self, request, scope, key):
        entry = services.context_get(scope=scope, key=key)
        if entry is None:
            raise NotFound(f"'{key}' is not set in scope '{scope}'")
        return _answer(entry)

    @extend_schema(request=WriteSerializer, responses=EntrySerializer, parameters=[IF_MATCH])
    def put(self, request, scope, key):
        if not isinstance(request.data, dict) or "value" not in request.data:
            raise ParseError('send {"value": <any JSON>, "ttl_seconds": <optional seconds>}')
        body = WriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry = services.context_set(scope=scope, key=key, value=body.validated_data["value"],
                                     ttl_seconds=body.validated_data.get("ttl_seconds"),
                                     if_version=_if_version(request), actor=request.user)
        return _answer(entry)

    @extend_schema(request=None, responses={204: OpenApiTypes.NONE}, parameters=[IF_MATCH])
    def delete(self, request, scope, key):
        services.context_delete(scope=scope, key=key, if_version=_if_version(request), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
