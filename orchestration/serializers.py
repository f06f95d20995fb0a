"""API representations of instances and step runs: the same shapes as `dac status --json`."""
from rest_framework import serializers

from registry.serializers import PriorityField

from .models import StepRun, WorkflowInstance
from .selectors import child_ids, instance_queue, instance_spent, instance_usage, ordered_step_runs


class StepRunSerializer(serializers.ModelSerializer):
    output = serializers.JSONField()
    error = serializers.JSONField()

    class Meta:
        model = StepRun
        fields = ["step_id", "status", "attempts", "started_at", "finished_at", "output", "error"]


class InstanceSerializer(serializers.ModelSerializer):
    """The `dac status --json` shape (DESIGN §8)."""

    workflow = serializers.CharField(source="definition.key")
    version = serializers.IntegerField(source="version.number")
    result = serializers.JSONField()
    error = serializers.JSONField()
    parent = serializers.UUIDField(source="parent_id", allow_null=True)
    children = serializers.SerializerMethodField()
    trigger = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    queue = serializers.SerializerMethodField(help_text="while queued: the limit that holds it and its position")

    class Meta:
        model = WorkflowInstance
        fields = ["id", "workflow", "version", "status", "priority", "result", "error", "parent", "children",
                  "trigger", "correlation_id", "created_by", "created_at", "started_at", "finished_at", "queue"]

    def get_children(self, instance) -> list[str]:
        return child_ids(instance)

    def get_trigger(self, instance) -> dict:
        return instance.trigger or {"type": "manual"}

    def get_created_by(self, instance) -> str | None:
        return instance.created_by.get_username() if instance.created_by_id else None

    def get_queue(self, instance) -> dict | None:
        return instance_queue(instance)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data["queue"] is None:  # present only while queued: the §8 shape is unchanged otherwise
            del data["queue"]
        return data


class InstanceDetailSerializer(InstanceSerializer):
    steps = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField(help_text="once it spent anything: tokens_in, tokens_out and cost_usd "
                                                        "(a decimal string) of all its attempts")

    class Meta(InstanceSerializer.Meta):
        fields = [*InstanceSerializer.Meta.fields, "steps", "usage"]

    def get_steps(self, instance) -> list[dict]:
        return StepRunSerializer(ordered_step_runs(instance), many=True).data

    def get_usage(self, instance) -> dict | None:
        return instance_usage(instance) if instance_spent(instance) else None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data["usage"] is None:  # present once it spent something: the §8 shape is unchanged otherwise
            del data["usage"]
        return data


class DecisionSerializer(serializers.Serializer):
    step = serializers.CharField(max_length=100)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000,
                                    help_text="why; required (non-blank) to reject")
    option = serializers.CharField(required=False, allow_blank=True, default="", max_length=100,
                                   help_text="with approve: one of the gate's options (default approve)")


class SpawnChildSerializer(serializers.Serializer):
    workflow = serializers.CharField(max_length=100)
    context = serializers.DictField(required=False, default=dict)


class SpawnRequestSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["parallel", "pipeline"])
    children = SpawnChildSerializer(many=True, allow_empty=False, max_length=100)
    context = serializers.DictField(required=False, default=dict)
    priority = PriorityField(required=False, allow_null=True, default=None)
