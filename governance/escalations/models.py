"""Escalations and the decisions recorded on them."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from dacproject.ids import uuid7

from .states import EscalationLevel, EscalationStatus, Gate


class Escalation(models.Model):
    """Something a human must see or decide (DESIGN §7.1). Changed only by governance services."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    level = models.CharField(max_length=16, choices=EscalationLevel.choices, default=EscalationLevel.APPROVAL)
    type = models.CharField(max_length=100, default="step_approval")
    status = models.CharField(max_length=16, choices=EscalationStatus.choices, default=EscalationStatus.PENDING)
    gate = models.CharField(max_length=16, choices=Gate.choices, default=Gate.STEP)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    workflow = models.CharField(max_length=100, db_index=True)
    instance = models.ForeignKey("orchestration.WorkflowInstance", null=True, blank=True,
                                 on_delete=models.CASCADE, related_name="escalations")
    step_run = models.ForeignKey("orchestration.StepRun", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="escalations", db_index=False)  # indexed below where set
    step_id = models.CharField(max_length=100, blank=True)
    # What the approver is shown: the step's resolved inputs (secrets masked), foreach items, the
    # rule or condition that raised it and the facts it saw. Its sha256 is each decision's proof.
    context = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=list, blank=True)
    approvers = models.JSONField(default=list, blank=True)  # Django group names
    min_approvals = models.PositiveSmallIntegerField(default=1)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="assigned_escalations")
    deadline = models.DateTimeField(null=True, blank=True)
    timeout_action = models.CharField(max_length=16, blank=True)
    escalate_to = models.JSONField(default=list, blank=True)
    # The coordination.escalation condition or governance rule that raised it: each fires once per instance.
    rule = models.CharField(max_length=200, blank=True)
    # The escalation this one replaced when its deadline passed (an escalation ladder).
    previous = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next")
    resolution = models.CharField(max_length=100, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("decide_any_escalation", "Can decide any escalation")]
        indexes = [
            models.Index(fields=["status", "deadline"], name="escalation_status_deadline"),
            models.Index(fields=["step_run"], condition=models.Q(step_run__isnull=False), name="escalation_step_run"),
            # Metrics: approval response times of what was decided lately.
            models.Index(fields=["resolved_at"], condition=models.Q(resolved_at__isnull=False),
                         name="escalation_resolved"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["instance", "rule"], condition=~models.Q(rule=""),
                                    name="uniq_escalation_rule_per_instance"),
            # At most one open gate per parked step: a redelivered park creates nothing.
            models.UniqueConstraint(fields=["step_run"], condition=models.Q(status__in=["pending", "acknowledged"]),
                                    name="uniq_open_escalation_per_step"),
        ]

    def __str__(self):
        return f"{self.title} ({self.status})"


class Decision(models.Model):
    """One user's decision on an escalation; each user counts once."""

    escalation = models.ForeignKey(Escalation, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    user_name = models.CharField(max_length=150)
    decision = models.CharField(max_length=100)  # approve | reject | acknowledge | <option>
    comment = models.TextField(blank=True)
    # sha256 of what the approver was shown (the escalation's context) when deciding.
    shown_sha256 = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["escalation_id", "at", "id"]
        constraints = [models.UniqueConstraint(fields=["escalation", "user_name"], name="uniq_decision_per_user")]

    def __str__(self):
        return f"{self.user_name}: {self.decision}"
