"""Deciding, acknowledging and reassigning escalations (DESIGN §7.1), for the CLI, API and console
alike: each checks who may act here, not in the views.

Lock order is the engine's: the instance row first, then the escalation row, so a decision and
the engine (or a deadline sweep) can never deadlock, and a second decision racing the first
finds the escalation already resolved. A refused decision changes nothing but is audited in a
transaction of its own.
"""
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from dacproject.ids import as_uuid
from dacproject.nul import UNSTORABLE, unstorable
from governance.audit import actor_parts, audit_record
from orchestration.engine.errors import Conflict, InvalidRequest, NotFound

from . import effects
from .models import Decision, Escalation
from .permissions import Refused, check_may_assign, check_may_decide, is_user
from .proof import inputs_digest, shown_digest
from .states import (
    ACKNOWLEDGE,
    APPROVE,
    REJECT,
    RESOLUTION_OF,
    EscalationStatus,
    Gate,
    check_transition,
    is_open,
    lets_step_run,
)

E = EscalationStatus
MAX_COMMENT = 5000
REASON_REQUIRED = "a rejection needs a reason: give a non-blank comment saying why (dac approve: --comment TEXT)"


def escalation_decide(*, escalation_id, decision, comment="", actor):
    """Record `actor`'s decision: `approve`, `reject`, one of the escalation's options, or
    `acknowledge`. `min_approvals` distinct approvals resolve a gate; one rejection vetoes it, and
    needs a reason (a non-blank `comment`, else InvalidRequest naming `comment` and nothing changes).
    Returns the escalation as it is after the decision."""
    try:
        return _decide(escalation_id, decision, comment, actor)
    except Refused as refusal:
        _audit_refusal(escalation_id, decision, actor, refusal)
        raise


def _decide_known(escalation, decision, comment, actor):
    """escalation_decide for an escalation just read (its instance known: one query fewer)."""
    try:
        return _decide(escalation.id, decision, comment, actor, instance_id=escalation.instance_id)
    except Refused as refusal:
        _audit_refusal(escalation.id, decision, actor, refusal)
        raise


def escalation_assign(*, escalation_id, user, comment="", actor):
    """Reassign an open escalation to `user` (a username), who may then decide it."""
    try:
        return _assign(escalation_id, user, comment, actor)
    except Refused as refusal:
        _audit_refusal(escalation_id, "assign", actor, refusal)
        raise


def escalation_for_step(*, instance_id, step_id):
    """The open escalation of a step parked for approval (`dac approve ID --step S`)."""
    if as_uuid(instance_id) is None:
        raise NotFound(f"instance '{instance_id}' not found")
    escalation = (Escalation.objects.filter(instance_id=instance_id, step_id=step_id, gate=Gate.STEP,
                                            status__in=[E.PENDING, E.ACKNOWLEDGED]).first())
    if escalation is None:
        from orchestration.models import StepRun, WorkflowInstance

        if not WorkflowInstance.objects.filter(id=instance_id).exists():
            raise NotFound(f"instance '{instance_id}' not found")
        run = StepRun.objects.filter(instance_id=instance_id, step_id=step_id).only("status").first()
        if run is None:
            raise NotFound(f"instance '{instance_id}' has no step '{step_id}'")
        raise Conflict(f"step '{step_id}' is {run.status}, not waiting for approval")
    return escalation


@transaction.atomic
def _decide(escalation_id, decision, comment, actor, *, instance_id=None):
    escalation, instance = _locked(escalation_id, instance_id=instance_id)
    _check_open(escalation)
    comment = _checked_comment(comment)
    decision = _checked_decision(escalation, decision, comment)
    if decision == REJECT and not comment:
        raise InvalidRequest(REASON_REQUIRED, details={"field": "comment"})
    check_may_decide(actor, escalation)
    name, votes = _record(escalation, actor, decision, comment)
    resolution = None if decision == ACKNOWLEDGE else _resolution(escalation, decision, votes)
    details = {"decision": decision, "comment": comment, "shown_sha256": shown_digest(escalation)}
    audit_record(actor=actor, verb=f"escalation.{'acknowledge' if decision == ACKNOWLEDGE else 'decide'}",
                 target_type="escalation", target_id=escalation.id,
                 details={**details, "resolution": resolution} if resolution else details)
    if decision == ACKNOWLEDGE:
        _acknowledge(escalation, instance, actor, name, comment)
    elif resolution is not None:  # this decision's audit row records the resolution too
        _resolve(escalation, instance, resolution, by=name, comment=comment, actor=actor, audited=True)
    return escalation


def _record(escalation, actor, decision, comment):
    """One Decision per person: an acknowledgement may later become their decision, nothing else
    may be decided twice. Returns (the person's name, every approving vote in order, this one last)."""
    _, name = actor_parts(actor)
    decisions = list(escalation.decisions.order_by("at", "id"))
    earlier = next((d for d in decisions if d.user_name == name), None)
    if earlier is not None and (earlier.decision != ACKNOWLEDGE or decision == ACKNOWLEDGE):
        raise Conflict(f"'{name}' has already {'acknowledged' if decision == ACKNOWLEDGE else 'decided'} "
                       f"escalation {escalation.id}; each person counts once")
    fields = {"decision": decision, "comment": comment, "shown_sha256": shown_digest(escalation),
              "at": timezone.now()}
    if earlier is not None:
        Decision.objects.filter(pk=earlier.pk).update(**fields)
    else:
        Decision.objects.create(escalation=escalation, user=actor if is_user(actor) else None, user_name=name,
                                **fields)
    votes = [d.decision for d in decisions if d.user_name != name and d.decision not in (ACKNOWLEDGE, REJECT)]
    return name, votes + ([decision] if decision not in (ACKNOWLEDGE, REJECT) else [])


def _acknowledge(escalation, instance, actor, name, comment):
    """A notice is done once acknowledged; a gate stays open, now known to be looked at."""
    if escalation.gate == Gate.NONE:
        _resolve(escalation, instance, RESOLUTION_OF[ACKNOWLEDGE], by=name, comment=comment, actor=actor,
                 audited=True)
        return
    if escalation.status == E.PENDING:
        _move(escalation, E.ACKNOWLEDGED)
        if escalation.assignee_id is None and is_user(actor):
            escalation.assignee = actor
        escalation.save(update_fields=["status", "assignee"])


def _resolution(escalation, decision, votes):
    """The resolution the decisions so far reach, or None while approvals are missing."""
    if decision == REJECT:
        return RESOLUTION_OF[REJECT]
    if len(votes) < escalation.min_approvals:
        return None
    # The most chosen option wins; between equals, the latest choice.
    best = max(reversed(votes), key=votes.count)
    return RESOLUTION_OF.get(best, best)


def resolve_now(escalation, instance, *, option, by, comment="", actor=None):
    """Resolve with `option` on someone's behalf (a deadline's timeout_action, say)."""
    _resolve(escalation, instance, RESOLUTION_OF.get(option, option), by=by, comment=comment, actor=actor)


def _resolve(escalation, instance, resolution, *, by, comment, actor, audited=False):
    from orchestration.engine.approvals import approval_granted, approval_refused, instance_gate_lifted
    from orchestration.engine.effects import Effects
    from orchestration.engine.plan import plan_for_version_id

    _move(escalation, E.RESOLVED)
    escalation.resolution, escalation.resolved_by, escalation.resolved_at = resolution, by, timezone.now()
    escalation.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
    effects.resolved(escalation, instance, actor=actor, comment=comment, audited=audited)
    if instance is None or escalation.gate == Gate.NONE:
        return
    option = {v: k for k, v in RESOLUTION_OF.items()}.get(resolution, resolution)
    decision = {"option": option, "by": by, "comment": comment, "escalation": str(escalation.id)}
    plan = plan_for_version_id(instance.version_id)
    work = Effects()
    if escalation.gate == Gate.INSTANCE:
        instance_gate_lifted(instance, plan, approved=lets_step_run(option), decision=decision, effects=work)
    else:
        decision["inputs_sha256"] = inputs_digest(escalation.context)
        release = approval_granted if lets_step_run(option) else approval_refused
        release(instance, plan, escalation.step_run_id, decision, work)
    work.send_on_commit()


@transaction.atomic
def _assign(escalation_id, username, comment, actor):
    escalation, _ = _locked(escalation_id)
    _check_open(escalation)
    if not isinstance(username, str) or unstorable(username):
        raise InvalidRequest("user must be a username", details={"field": "user"})
    comment = _checked_comment(comment)
    user = get_user_model().objects.filter(username=username, is_active=True).first() if username else None
    if user is None:
        raise InvalidRequest(f"no active user '{username}' to assign escalation {escalation.id} to",
                             details={"field": "user"})
    check_may_assign(actor, escalation)
    escalation.assignee = user
    escalation.save(update_fields=["assignee"])
    audit_record(actor=actor, verb="escalation.assign", target_type="escalation", target_id=escalation.id,
                 details={"assignee": user.get_username(), "comment": comment})
    return escalation


def _locked(escalation_id, *, instance_id=None):
    """(escalation, its instance), both locked: the instance first, as the engine does."""
    from orchestration.engine.steps import lock_instance

    key = as_uuid(escalation_id)
    if instance_id is None and key:
        instance_id = Escalation.objects.filter(id=key).values_list("instance_id", flat=True).first()
    if instance_id is None and not (key and Escalation.objects.filter(id=key).exists()):
        raise NotFound(f"escalation '{escalation_id}' not found")
    instance = lock_instance(instance_id) if instance_id else None
    return Escalation.objects.select_for_update().get(id=key), instance


def _check_open(escalation):
    if not is_open(escalation.status):
        detail = f" as {escalation.resolution}" if escalation.resolution else ""
        by = f" by {escalation.resolved_by}" if escalation.resolved_by else ""
        raise Conflict(f"escalation {escalation.id} is {escalation.status}{detail}{by}; it can no longer be decided",
                       details={"status": escalation.status, "resolution": escalation.resolution or None})


def _checked_comment(comment):
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise InvalidRequest("comment must be text", details={"field": "comment"})
    if len(comment) > MAX_COMMENT:
        raise InvalidRequest(f"comment is longer than {MAX_COMMENT} characters", details={"field": "comment"})
    if unstorable(comment):
        raise InvalidRequest(f"comment {UNSTORABLE}", details={"field": "comment"})
    return comment.strip()


def _checked_decision(escalation, decision, comment):
    if not isinstance(decision, str) or not decision or unstorable(decision):
        raise InvalidRequest("a decision is required: approve, reject, acknowledge or one of the options",
                             details={"field": "resolution"})
    decision = {"approved": APPROVE, "rejected": REJECT, "acknowledged": ACKNOWLEDGE}.get(decision, decision)
    if decision == ACKNOWLEDGE:
        return decision
    if escalation.gate == Gate.NONE:
        raise InvalidRequest(f"escalation {escalation.id} is a {escalation.level} notice: it can only be "
                             "acknowledged", details={"field": "resolution", "allowed": [ACKNOWLEDGE]})
    options = escalation.options or [APPROVE, REJECT]
    allowed = [*options, *([REJECT] if REJECT not in options else [])]
    if decision == APPROVE and APPROVE not in options:
        raise InvalidRequest(f"escalation {escalation.id} offers options {', '.join(options)}: choose one "
                             "(approve is not among them)", details={"field": "resolution", "allowed": allowed})
    if decision not in allowed:
        raise InvalidRequest(f"unknown option '{decision}' for escalation {escalation.id}; choose one of "
                             f"{', '.join(allowed)}", details={"field": "resolution", "allowed": allowed})
    return decision


def _move(escalation, status):
    check_transition(escalation.status, status)
    escalation.status = status


def _audit_refusal(escalation_id, decision, actor, refusal):
    with transaction.atomic():
        audit_record(actor=actor, verb="escalation.refused", target_type="escalation", target_id=escalation_id,
                     details={"decision": decision, "reason": refusal.message})


def step_decide(*, instance_id, step_id, decision, comment="", actor):
    """Decide the open escalation of a step parked for approval (`dac approve ID --step S`,
    `instances/{id}/approve/`): the same service, so the same checks."""
    escalation = escalation_for_step(instance_id=instance_id, step_id=step_id)
    return _decide_known(escalation, decision, comment, actor)
