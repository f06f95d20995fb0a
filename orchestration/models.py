"""Engine state: instances, their step runs, foreach items and every attempt.

This is the source of truth; Redis only carries messages. Status fields change only through
`orchestration.engine` services, by conditional updates under the instance row lock.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from dacproject.ids import uuid7

from .states import InstanceStatus, StepStatus


class WorkflowInstance(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    definition = models.ForeignKey("registry.WorkflowDefinition", on_delete=models.PROTECT, related_name="instances")
    version = models.ForeignKey("registry.WorkflowVersion", on_delete=models.PROTECT, related_name="instances")
    spec_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=InstanceStatus.choices, default=InstanceStatus.PENDING)
    context = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
                               db_index=False)  # indexed below for children only
    # A spawned child: the parent's step (and foreach item) that started it, in which attempt of
    # that step or item, and which supervised restart; unique, so a redelivered spawn starts nothing.
    parent_step_run = models.ForeignKey("StepRun", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="spawned", db_index=False)  # uniq_spawned_child leads with it
    parent_item_index = models.PositiveIntegerField(null=True, blank=True)
    spawn_attempt = models.PositiveIntegerField(null=True, blank=True)
    spawn_restart = models.PositiveIntegerField(null=True, blank=True)
    # What started it (DESIGN §2 `trigger`): {type: manual|event|scheduled|webhook|spawn, ...}.
    trigger = models.JSONField(null=True, blank=True)
    # The key of the trigger that started it (a schedule's PeriodicTask name, an event trigger's key).
    trigger_key = models.CharField(max_length=300, blank=True)
    # Shared by every instance started, directly or not, by one outside stimulus.
    correlation_id = models.CharField(max_length=200, blank=True)
    priority = models.PositiveSmallIntegerField(default=5)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Set when a step failed: no new steps start; compensation runs once nothing is running.
    failing = models.BooleanField(default=False)
    compensation_started = models.BooleanField(default=False)
    # Held behind an instance-level approval escalation (a `require_approval` condition): no new
    # step starts and the instance does not finish until it is decided.
    gated = models.BooleanField(default=False)
    # Admission (DESIGN §6.6): the concurrency pools it needs, whether it holds their slots, and
    # while `queued`, what holds it ({limit, key, max} or {limit: "api_tokens", type, share}).
    slot_keys = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    holds_slots = models.BooleanField(default=False)
    queued_reason = models.JSONField(null=True, blank=True)
    # Usage of all its attempts, exact (the ledger's per-instance roll-up; budgets read it).
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    # Steps completed so far; gives each completion its order for compensation.
    completion_count = models.PositiveIntegerField(default=0)
    deadline_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # Every index is paid for on each status change: the optional columns are indexed only
        # where they are set.
        indexes = [
            models.Index(fields=["status", "deadline_at"], name="instance_status_deadline"),
            models.Index(fields=["definition", "status"], name="instance_definition_status"),
            models.Index(fields=["correlation_id"], name="instance_correlation"),
            models.Index(fields=["parent"], condition=models.Q(parent__isnull=False), name="instance_parent"),
            models.Index(fields=["trigger_key"], condition=~models.Q(trigger_key=""), name="instance_trigger_key"),
            # Metrics: a workflow's runs over a range; what finished lately (run durations, failures).
            models.Index(fields=["definition", "created_at"], name="instance_definition_created"),
            models.Index(fields=["finished_at"], condition=models.Q(finished_at__isnull=False),
                         name="instance_finished"),
            # The admission queue: highest priority, then oldest.
            models.Index(models.F("priority").desc(), "created_at", condition=models.Q(status="queued"),
                         name="instance_admission_queue"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["parent_step_run", "parent_item_index", "spawn_attempt", "spawn_restart"],
                                    condition=models.Q(parent_step_run__isnull=False), nulls_distinct=False,
                                    name="uniq_spawned_child"),
        ]

    def __str__(self):
        return str(self.id)

    @property
    def workflow_key(self):
        return self.definition.key


class StepRun(models.Model):
    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="step_runs")
    step_id = models.CharField(max_length=100)
    status = models.CharField(max_length=24, choices=StepStatus.choices, default=StepStatus.PENDING)
    # Number of the latest attempt claimed by a worker (0: none yet). Never reset, so every
    # attempt keeps a unique number; `attempt_base` is its value when an instance retry reset it.
    attempts = models.PositiveIntegerField(default=0)
    attempt_base = models.PositiveIntegerField(default=0)
    # Tries lost with their worker and sent again by the reconciler.
    recoveries = models.PositiveIntegerField(default=0)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # foreach: the rendered items (their count) fixed when the step became ready.
    item_count = models.PositiveIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Monotonic order of completion within the instance; compensation runs in reverse.
    completed_seq = models.PositiveIntegerField(null=True, blank=True)
    compensated_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.CharField(max_length=150, blank=True)
    decision_comment = models.TextField(blank=True)
    # The human decision of its approval gate, `steps.<id>.decision` in templates:
    # {option, by, comment, inputs_sha256} (the proof the step's inputs must still match).
    decision = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["instance_id", "id"]
        constraints = [models.UniqueConstraint(fields=["instance", "step_id"], name="uniq_instance_step")]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"], name="steprun_status_heartbeat"),
            # The steps a task holds: how a redelivered message finds the step it continued into.
            models.Index(fields=["task_id"], condition=models.Q(status="running"), name="steprun_running_task"),
        ]

    def __str__(self):
        return f"{self.instance_id}/{self.step_id}"


class StepItem(models.Model):
    """One element of a foreach step; each runs (and retries) on its own chord header task."""

    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    item = models.JSONField(null=True)
    status = models.CharField(max_length=24, choices=StepStatus.choices, default=StepStatus.READY)
    attempts = models.PositiveIntegerField(default=0)
    attempt_base = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["step_run_id", "index"]
        constraints = [models.UniqueConstraint(fields=["step_run", "index"], name="uniq_step_item")]

    def __str__(self):
        return f"{self.step_run_id}[{self.index}]"


class AttemptStatus(models.TextChoices):
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class StepAttempt(models.Model):
    """A record of one try of a step (or of one foreach item)."""

    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="attempt_records")
    item_index = models.PositiveIntegerField(null=True, blank=True)
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.RUNNING)
    worker = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    inputs = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    model = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["step_run_id", "item_index", "number"]
        # Metrics: the attempts that finished lately.
        indexes = [models.Index(fields=["finished_at"], condition=models.Q(finished_at__isnull=False),
                                name="attempt_finished")]
        constraints = [
            models.UniqueConstraint(
                fields=["step_run", "item_index", "number"],
                name="uniq_step_attempt",
                nulls_distinct=False,
            )
        ]

    def __str__(self):
        item = "" if self.item_index is None else f"[{self.item_index}]"
        return f"{self.step_run_id}{item} #{self.number}"


# Capability packages keep their models beside their code; Django finds them through this module.
from .context.models import SharedValue  # noqa: E402,F401
from .events.models import (  # noqa: E402,F401
    DebounceWindow,
    Event,
    EventMatch,
    EventWait,
    IdempotencyRecord,
    ScheduleState,
    Trigger,
)
from .resources.models import ConcurrencyPool, UsageLedger  # noqa: E402,F401
from .workers.models import WorkerBeat  # noqa: E402,F401
