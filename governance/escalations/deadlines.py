"""Deadlines and ladders (DESIGN §7.1), and the condition sweep (§7.2), run by beat every
DAC_ESCALATION_SWEEP_INTERVAL_SECONDS. Each escalation is handled in its own transaction under
the same locks as a decision, so two sweeps racing (or a sweep racing a human) act once.
"""
from django.db import transaction
from django.utils import timezone

from orchestration.states import InstanceStatus as I

from . import effects
from .models import Escalation
from .services import _locked, resolve_now
from .states import APPROVE, OPEN, REJECT, EscalationLevel, EscalationStatus, Gate, check_transition, is_open

TIMEOUT_ACTOR = "policy:timeout"
SWEEP_BATCH = 200


def escalations_sweep():
    """Apply every passed deadline, then look at running instances' conditions."""
    due = list(Escalation.objects.filter(status__in=OPEN, deadline__lte=timezone.now())
               .order_by("deadline").values_list("id", flat=True)[:SWEEP_BATCH])
    timed_out = sum(1 for escalation_id in due if escalation_time_out(escalation_id=escalation_id))
    return {"escalations_timed_out": timed_out, "conditions_fired": conditions_sweep()}


@transaction.atomic
def escalation_time_out(*, escalation_id):
    """Apply the escalation's timeout_action if its deadline has passed; the escalation that
    replaced it for `escalate`, else None. Nothing happens to one decided meanwhile."""
    escalation, instance = _locked(escalation_id)
    if not is_open(escalation.status) or escalation.deadline is None or escalation.deadline > timezone.now():
        return None
    action = escalation.timeout_action or REJECT
    comment = f"deadline {escalation.deadline.isoformat()} passed"
    if action == "escalate":
        return _escalate(escalation, instance)
    option = REJECT if action == REJECT else _approving_option(escalation)
    resolve_now(escalation, instance, option=option, by=TIMEOUT_ACTOR, comment=comment)
    return escalation


def _approving_option(escalation):
    options = escalation.options or [APPROVE]
    return APPROVE if APPROVE in options else next(o for o in options if o != REJECT)


def _escalate(escalation, instance):
    """The old escalation expires; a new one at level intervention goes to `escalate_to`, holding
    the same step (or instance) parked."""
    check_transition(escalation.status, EscalationStatus.EXPIRED)
    escalation.status, escalation.closed_reason = EscalationStatus.EXPIRED, "deadline passed: escalated"
    escalation.resolved_at = timezone.now()
    escalation.save(update_fields=["status", "closed_reason", "resolved_at"])
    effects.expired(escalation, instance, reason=escalation.closed_reason)
    successor = Escalation.objects.create(
        level=EscalationLevel.INTERVENTION, type=escalation.type, gate=escalation.gate,
        title=f"ESCALATED: {escalation.title}"[:300],
        description=f"{escalation.description}\n\nNobody decided before {escalation.deadline.isoformat()}.".strip(),
        workflow=escalation.workflow, instance_id=escalation.instance_id, step_run_id=escalation.step_run_id,
        step_id=escalation.step_id, context=escalation.context, options=escalation.options,
        approvers=escalation.escalate_to or escalation.approvers, min_approvals=1, previous=escalation,
    )
    effects.opened(successor, instance)
    return successor


def escalations_close(instance, *, step_run_ids=None, reason):
    """An instance ended (or these parked steps were cancelled): its open gates expire, since
    nothing is left for them to decide (notices stay open until acknowledged)."""
    query = Escalation.objects.filter(instance_id=instance.id, status__in=OPEN).exclude(gate=Gate.NONE)
    if step_run_ids is not None:
        query = query.filter(step_run_id__in=step_run_ids)
    closing = list(query)
    for escalation in closing:
        escalation.status, escalation.closed_reason = EscalationStatus.EXPIRED, reason[:300]
        escalation.resolved_at = timezone.now()
        escalation.save(update_fields=["status", "closed_reason", "resolved_at"])
        effects.expired(escalation, instance, reason=escalation.closed_reason)
    return len(closing)


def conditions_sweep():
    """Evaluate `coordination.escalation` conditions (e.g. `workflow_duration > 4h`) for running
    instances of governed workflows; each instance in its own transaction."""
    from orchestration.models import WorkflowInstance
    from registry.models import Blueprint

    governed = [b for b, spec in Blueprint.objects.values_list("id", "spec")
                if (spec.get("coordination") or {}).get("escalation")]
    if not governed:
        return 0
    candidates = (WorkflowInstance.objects.filter(definition__blueprint_id__in=governed,
                                                  status__in=[I.RUNNING, I.WAITING], gated=False)
                  .order_by("updated_at").values_list("id", flat=True)[:SWEEP_BATCH])
    return sum(1 for instance_id in list(candidates) if _conditions_now(instance_id))


@transaction.atomic
def _conditions_now(instance_id):
    from orchestration.engine.approvals import Governance
    from orchestration.engine.plan import plan_for_version_id
    from orchestration.engine.steps import lock_instance

    instance = lock_instance(instance_id)
    if instance.status not in (I.RUNNING, I.WAITING) or instance.gated:
        return False
    before = Escalation.objects.filter(instance_id=instance_id).exclude(rule="").count()
    if Governance.of(instance).holds_instance(plan_for_version_id(instance.version_id)):
        instance.save(update_fields=["gated", "updated_at"])
    return Escalation.objects.filter(instance_id=instance_id).exclude(rule="").count() > before

