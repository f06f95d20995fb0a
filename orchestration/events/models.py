"""The event bus's records (DESIGN §6.1, §6.2): events, what each one matched, the trigger
index that `dac apply` keeps, parked `wait_for` steps, debounce windows, schedule state and
idempotency keys. PostgreSQL holds all of it; Redis only carries the reaction messages."""
from django.db import models
from django.utils import timezone

from dacproject.ids import uuid7


class Event(models.Model):
    """A published event, stored before anything reacts to it."""

    event_id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    event_type = models.CharField(max_length=200)
    source_workflow = models.CharField(max_length=100, blank=True)
    # An append-only log's loose reference: no constraint to check per insert, and indexed with
    # the time below (event_source_time) rather than on its own.
    source_instance = models.ForeignKey("orchestration.WorkflowInstance", null=True, blank=True,
                                        on_delete=models.DO_NOTHING, related_name="+", db_index=False,
                                        db_constraint=False)
    payload = models.JSONField(default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(default=5)
    correlation_id = models.CharField(max_length=200, blank=True)
    ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField(db_index=True)
    # Set when the reaction task has matched the event against triggers and waiting steps.
    reacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [
            models.Index(fields=["event_type", "timestamp"], name="event_type_time"),
            models.Index(fields=["source_instance", "timestamp"], name="event_source_time"),
            models.Index(fields=["correlation_id"], name="event_correlation"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"

    @property
    def expires_at(self):
        return self.timestamp + timezone.timedelta(seconds=self.ttl_seconds) if self.ttl_seconds else None

    def is_expired(self, now=None):
        return self.ttl_seconds is not None and (now or timezone.now()) > self.expires_at


class MatchKind(models.TextChoices):
    STARTED = "started", "started an instance"
    RESUMED = "resumed", "resumed a waiting step"


class EventMatch(models.Model):
    """What an event did. Unique per (event, trigger) and per (event, waiting step): a reaction
    delivered twice finds its row and does nothing twice."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="matches")
    kind = models.CharField(max_length=16, choices=MatchKind.choices)
    trigger_key = models.CharField(max_length=300, blank=True)
    instance = models.ForeignKey("orchestration.WorkflowInstance", on_delete=models.CASCADE, related_name="+")
    step_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "trigger_key"], condition=models.Q(kind="started"),
                                    name="uniq_event_trigger_start"),
            models.UniqueConstraint(fields=["event", "instance", "step_id"], condition=models.Q(kind="resumed"),
                                    name="uniq_event_step_resume"),
        ]

    def __str__(self):
        return f"{self.event_id} {self.kind} {self.instance_id}"


class TriggerKind(models.TextChoices):
    EVENT = "event", "event"
    WEBHOOK = "webhook", "webhook"


class Trigger(models.Model):
    """An event or webhook trigger of a workflow, or a blueprint auto_spawn rule, indexed so an
    event finds what it starts without reading every definition. Rewritten by `dac apply`."""

    key = models.CharField(max_length=300, unique=True)
    kind = models.CharField(max_length=16, choices=TriggerKind.choices)
    event_type = models.CharField(max_length=200, blank=True, db_index=True)
    path = models.CharField(max_length=500, blank=True, db_index=True)
    workflow = models.ForeignKey("registry.WorkflowDefinition", on_delete=models.CASCADE, related_name="triggers")
    blueprint = models.ForeignKey("registry.Blueprint", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="triggers")
    # {filters, context, priority, debounce, secret}: the normalised trigger or rule.
    spec = models.JSONField(default=dict)
    # A trigger reacts only to events published after it was registered.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["path"], condition=models.Q(kind="webhook"),
                                               name="uniq_webhook_path")]

    def __str__(self):
        return self.key


class WaitStatus(models.TextChoices):
    WAITING = "waiting", "waiting"
    RESUMED = "resumed", "resumed"
    TIMED_OUT = "timed_out", "timed out"
    CANCELLED = "cancelled", "cancelled"


class EventWait(models.Model):
    """A `wait_for` step parked until a matching event (or its timeout)."""

    step_run = models.ForeignKey("orchestration.StepRun", on_delete=models.CASCADE, related_name="waits")
    instance = models.ForeignKey("orchestration.WorkflowInstance", on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveIntegerField()
    event_type = models.CharField(max_length=200)
    match = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    # Only events published at or after this (the instance's start) can resume the step.
    since = models.DateTimeField()
    deadline_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=WaitStatus.choices, default=WaitStatus.WAITING)
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # When the parking task looked for an event published before the wait (the reconciler
    # repeats the look for a wait whose task died first).
    checked_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["step_run", "attempt"], name="uniq_wait_step_attempt")]
        indexes = [
            models.Index(fields=["event_type"], condition=models.Q(status="waiting"), name="wait_open_type"),
            models.Index(fields=["deadline_at"], condition=models.Q(status="waiting"), name="wait_open_deadline"),
        ]

    def __str__(self):
        return f"{self.step_run_id} waits for {self.event_type}"


class DebounceWindow(models.Model):
    """A burst of matching events with one debounce key: one start, `seconds` after the last."""

    trigger_key = models.CharField(max_length=300)
    debounce_key = models.CharField(max_length=500)
    last_event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    events = models.PositiveIntegerField(default=1)
    fire_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trigger_key", "debounce_key"], name="uniq_debounce_window")]

    def __str__(self):
        return f"{self.trigger_key} [{self.debounce_key}]"


class ScheduleState(models.Model):
    """Per scheduled trigger (its PeriodicTask name): serialises firings and holds a buffered run."""

    name = models.CharField(max_length=200, unique=True)
    buffered = models.BooleanField(default=False)
    last_fired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name


class IdempotencyRecord(models.Model):
    """A start seen before: webhook Idempotency-Key headers and beat firings (24 h)."""

    key = models.CharField(max_length=500, unique=True)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return self.key
