"""API representations of instances and step runs: the same shapes as `dac status --json`."""
from rest_framework import serializers

from .models import StepRun, WorkflowInstance
from .selectors import ordered_step_runs


class StepRunSerializer(serializers.ModelSerializer):
    output = serializers.JSONField()
    error = serializers.JSONField()

    class Meta:
        model = StepRun
        fields = ["step_id", "status", "attempts", "started_at", "finished_at", "output", "error"]


class InstanceSerializer(serializers.ModelSerializer):
    workflow = serializers.CharField(source="definition.key")
    version = serializers.IntegerField(source="version.number")
    result = serializers.JSONField()
    error = serializers.JSONField()
    parent = serializers.UUIDField(source="parent_id", allow_null=True)

    class Meta:
        model = WorkflowInstance
        fields = ["id", "workflow", "version", "status", "result", "error", "parent", "created_at", "started_at",
                  "finished_at"]


class InstanceDetailSerializer(InstanceSerializer):
    steps = serializers.SerializerMethodField()

    class Meta(InstanceSerializer.Meta):
        fields = [*InstanceSerializer.Meta.fields, "steps"]

    def get_steps(self, instance) -> list[dict]:
        return StepRunSerializer(ordered_step_runs(instance), many=True).data


class DecisionSerializer(serializers.Serializer):
    step = serializers.CharField(max_length=100)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)
