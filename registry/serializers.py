"""API representations of registry objects (read side)."""
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


class RunRequestSerializer(serializers.Serializer):
    context = serializers.DictField(required=False, default=dict)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=9, allow_null=True, default=None)
