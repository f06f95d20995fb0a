"""API representations of registry objects (read side)."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import WorkflowDefinition


class WorkflowSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="key")
    version = serializers.IntegerField(source="latest_version.number", allow_null=True)
    sha256 = serializers.CharField(source="latest_version.spec_sha256", allow_null=True)
    triggers = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowDefinition
        fields = ["id", "name", "type", "description", "status", "version", "sha256", "inputs", "outputs", "tags",
                  "owner", "triggers", "created_at", "updated_at"]

    def get_triggers(self, definition) -> list[dict]:
        return definition.latest_version.spec.get("triggers", []) if definition.latest_version else []


class WorkflowDetailSerializer(WorkflowSerializer):
    spec = serializers.JSONField(source="latest_version.spec")

    class Meta(WorkflowSerializer.Meta):
        fields = [*WorkflowSerializer.Meta.fields, "spec"]


class ApplyReportSerializer(serializers.Serializer):
    kind = serializers.CharField()
    workflows = serializers.ListField(child=serializers.DictField())
    agents = serializers.ListField(child=serializers.DictField())
    warnings = serializers.ListField(child=serializers.DictField())


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0, "maximum": 9},
                             {"type": "string", "enum": ["low", "normal", "high", "critical"]}]})
class PriorityField(serializers.Field):
    """low|normal|high|critical or 0..9 (9 most urgent), stored as 0..9."""

    def to_internal_value(self, data):
        from .spec.checker import parse_priority

        value = parse_priority(data)
        if value is None:
            raise serializers.ValidationError("must be low, normal, high, critical or 0..9")
        return value

    def to_representation(self, value):
        return value


class RunRequestSerializer(serializers.Serializer):
    context = serializers.DictField(required=False, default=dict)
    priority = PriorityField(required=False, allow_null=True, default=None)
