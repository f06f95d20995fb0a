"""Opening escalations from the engine (DESIGN §7.1, §7.2). Called under the instance row lock,
inside the engine's transaction: the escalation, its event, its notifications and its audit row
commit with the parked step, or not at all.

- `step_requirement`: does a step about to run need a human, after the blueprint's rules?
- `open_step_gate`: park it behind an `approval` escalation (or resolve one by policy at once).
- `conditions_fire`: `coordination.escalation` conditions, each at most once per instance.
- `instance_escalation_open`: a notice or instance gate raised by such a rule, a budget or a quota.
"""
from dataclasses import replace

from django.utils import timezone

from governance.conditions import parse

from .facts import InstanceFacts, step_operations
from .models import Escalation
from .policy import Requirement, default_approvers
from .states import RESOLUTION_OF, EscalationLevel, EscalationStatus, Gate, lets_step_run

POLICY_ACTOR = "policy:auto_approve"


def step_requirement(step, policy, facts, *, agent_requires=False):
    """The approval a step needs, or None. Order (DESIGN §7.2): the step's own `approval`
    (an agent's APPROVAL_REQUIRED risk counts as `approval: true` unless the step says false),
    `governance.approval_required` types; then the first `governance.rules` entry whose `when`
    holds decides; then `auto_approve` types decide by policy, unless a type is also
    approval_required (which wins)."""
    approval = step["approval"]
    own = approval if isinstance(approval, dict) else None
    types = step_operations(step)
    required_by_type = bool(types & policy.approval_required)
    needs = bool(own) or (agent_requires and approval is not False) or required_by_type
    base = _requirement_from(own, types, policy) if needs else None
    for rule in policy.rules:
        if rule["when"] and parse(rule["when"]).evaluate(facts):
            return _apply_rule(rule, base, types, policy, required_by_type)
    if base is not None and types & policy.auto_approve and not required_by_type:
        return replace(base, auto_approve=True, reasons=(f"auto_approve: {sorted(types & policy.auto_approve)[0]}",))
    return base


def _requirement_from(own, types, policy):
    own = own or {}
    return Requirement(
        type=own.get("type") or (sorted(types)[0] if types else "step_approval"),
        level=own.get("level") or "approval",
        approvers=tuple(own.get("approvers") or ()) or default_approvers(policy),
        min_approvals=own.get("min_approvals") or 1,
        timeout_seconds=own.get("timeout_seconds") or _minutes_as_seconds(own.get("timeout_minutes")),
        timeout_action=own.get("timeout_action") or "reject",
        escalate_to=tuple(own.get("escalate_to") or ()),
        options=tuple(own.get("options") or ("approve", "reject")),
    )


def _minutes_as_seconds(minutes):
    """Versions registered before `timeout_seconds` existed keep their deadlines in minutes."""
    return minutes * 60 if minutes else None


def _apply_rule(rule, base, types, policy, required_by_type):
    if rule["action"] == "auto_approve":
        if base is None:
            return None
        if required_by_type:  # approval_required wins over any auto approval
            return base
        return replace(base, auto_approve=True, rule=rule["name"], reasons=(f"rule {rule['name']}",))
    base = base or _requirement_from(None, types, policy)
    changes = {"rule": rule["name"], "reasons": (f"rule {rule['name']}: {rule['when']}",)}
    for name in ("approvers", "escalate_to"):
        if rule[name]:
            changes[name] = tuple(rule[name])
    for name in ("min_approvals", "timeout_seconds", "timeout_action", "level"):
        if rule.get(name):
            changes[name] = rule[name]
    if rule["action"] == "escalate":
        changes["level"] = EscalationLevel.INTERVENTION
    return replace(base, **changes)


def open_step_gate(instance, plan, run, step, requirement, shown):
    """Create the gate's escalation; with `auto_approve` it is resolved by policy at once and the
    decision is returned for the step to carry (else None: the step parks)."""
    from . import effects

    now = timezone.now()
    workflow = plan.spec["id"]
    escalation = Escalation(
        level=requirement.level, type=requirement.type, gate=Gate.STEP,
        title=f"{workflow}: approve step '{run.step_id}'",
        description=step.get("description") or "; ".join(requirement.reasons),
        workflow=workflow, instance_id=instance.id, step_run_id=run.id, step_id=run.step_id,
        context={**shown, **({"reasons": list(requirement.reasons)} if requirement.reasons else {})},
        options=list(requirement.options), approvers=list(requirement.approvers),
        min_approvals=requirement.min_approvals,
        deadline=now + timezone.timedelta(seconds=requirement.timeout_seconds) if requirement.timeout_seconds else None,
        timeout_action=requirement.timeout_action if requirement.timeout_seconds else "",
        escalate_to=list(requirement.escalate_to), created_at=now,
    )
    # Policy chooses the first option that lets the step run (approve, unless options say otherwise).
    option = next(o for o in requirement.options if lets_step_run(o)) if requirement.auto_approve else None
    if option:
        escalation.status, escalation.resolution = EscalationStatus.RESOLVED, RESOLUTION_OF.get(option, option)
        escalation.resolved_by, escalation.resolved_at = POLICY_ACTOR, now
    escalation.save(force_insert=True)
    # Decided by policy at once: on the bus and in the audit log, but nobody is paged.
    effects.opened(escalation, instance, notify=not option)
    if option:
        effects.resolved(escalation, instance, actor=POLICY_ACTOR, notify=False)
        return {"option": option, "by": POLICY_ACTOR, "comment": "; ".join(requirement.reasons),
                "escalation": str(escalation.id)}
    return None


def conditions_fire(instance, plan, policy, step=None):
    """Evaluate the blueprint's `coordination.escalation` conditions for this instance now;
    returns True when one that requires approval fired (the instance is then gated)."""
    if not policy.escalations:
        return False
    fired = set(Escalation.objects.filter(instance_id=instance.id).exclude(rule="").values_list("rule", flat=True))
    facts = InstanceFacts(instance, plan, step)
    gated = False
    for rule in policy.escalations:
        if rule["key"] in fired or not rule["condition"]:
            continue
        condition = parse(rule["condition"])
        if not condition.evaluate(facts):
            continue
        requires = rule["action"] == "require_approval"
        workflow = plan.spec["id"]
        instance_escalation_open(
            instance, workflow, rule=rule["key"], level=rule["level"], kind=rule["action"], gates=requires,
            title=rule["title"] or f"{workflow}: {rule['condition']}",
            description=f"condition `{rule['condition']}` holds ({rule['action']})", step_id=facts["step"] or "",
            context={"condition": rule["condition"], "action": rule["action"], "facts": facts.shown(condition.names)},
            approvers=list(rule["approvers"]) or list(default_approvers(policy)), min_approvals=rule["min_approvals"],
        )
        if requires:
            gated = True
            break  # one gate at a time: later conditions are looked at again once it is decided
    return gated


def instance_escalation_open(instance, workflow, *, rule, level, kind, title, description, context, approvers,
                             gates=False, step_id="", min_approvals=1):
    """An escalation about the whole instance, raised by `rule` (a condition, its budget, its type's
    token quota) at most once per instance: a notice, or with `gates` an approval that holds the
    instance's next steps (`instance.gated`) until it is decided."""
    from . import effects

    escalation = Escalation.objects.create(
        level=level, type=kind, gate=Gate.INSTANCE if gates else Gate.NONE, title=title[:300],
        description=description, workflow=workflow, instance_id=instance.id, step_id=step_id, context=context,
        options=["approve", "reject"] if gates else [], approvers=list(approvers), min_approvals=min_approvals,
        rule=rule,
    )
    effects.opened(escalation, instance)
    if gates:
        instance.gated = True
    return escalation
