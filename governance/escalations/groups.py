"""Approver groups named in definitions and blueprints, checked against Django's groups when they
are validated or applied: a `min_approvals` its existing groups can never reach is an error.

A group that does not exist yet is not reported here: definitions (the DESIGN §2 example, the
seed blueprint) are valid before an operator creates their groups, and `dac validate` keeps its
warnings for what the document itself says. Escalations naming a missing group say so instead
(`missing_groups`), and until it exists users with governance.decide_any_escalation decide."""
from django.contrib.auth.models import Group

from registry.spec.errors import SpecError


def approver_group_problems(compiled, blueprint_file=None):
    """SpecErrors for the approver lists of a compiled document that can never be satisfied."""
    uses = list(_uses(compiled, blueprint_file))
    names = {g for use in uses for g in use["groups"]}
    members = _active_members(names)
    errors = []
    for use in uses:
        missing = [g for g in use["groups"] if g not in members]
        needed = use["min_approvals"] or 1
        if not missing and use["groups"] and needed > 1:
            people = set().union(*(members[g] for g in use["groups"]))
            if needed > len(people):
                errors.append(SpecError(use["file"], use["step"], use["min_approvals_field"],
                                        f"min_approvals {needed} is more than the {len(people)} active member(s) of "
                                        f"{', '.join(use['groups'])}: the gate could never be approved",
                                        use["workflow"]))
    return errors


def _active_members(names):
    members = {name: set() for name in Group.objects.filter(name__in=names).values_list("name", flat=True)}
    rows = Group.objects.filter(name__in=members, user__is_active=True).values_list("name", "user__id")
    for name, user_id in rows:
        members[name].add(user_id)
    return members


def _uses(compiled, blueprint_file):
    for doc in compiled.workflows:
        for step in doc.spec["steps"] or []:
            approval = step["approval"] if isinstance(step["approval"], dict) else None
            if approval is None:
                continue
            yield _use(doc.file, doc.spec["id"], step["id"], "approval.approvers", approval["approvers"],
                       approval["min_approvals"], "approval.min_approvals")
            yield _use(doc.file, doc.spec["id"], step["id"], "approval.escalate_to", approval["escalate_to"])
    blueprint = compiled.blueprint
    if not blueprint:
        return
    governance, where = blueprint.get("governance") or {}, blueprint_file
    yield _use(where, None, None, "governance.approvers", governance.get("approvers") or [])
    for i, rule in enumerate(governance.get("rules") or []):
        yield _use(where, None, None, f"governance.rules[{i}].approvers", rule.get("approvers") or [],
                   rule.get("min_approvals"), f"governance.rules[{i}].min_approvals")
        yield _use(where, None, None, f"governance.rules[{i}].escalate_to", rule.get("escalate_to") or [])
    for i, rule in enumerate((blueprint.get("coordination") or {}).get("escalation") or []):
        yield _use(where, None, None, f"coordination.escalation[{i}].approvers", rule.get("approvers") or [],
                   rule.get("min_approvals"), f"coordination.escalation[{i}].min_approvals")


def _use(file, workflow, step, field, groups, min_approvals=None, min_approvals_field=None):
    return {"file": file, "workflow": workflow, "step": step, "field": field, "groups": list(groups),
            "min_approvals": min_approvals, "min_approvals_field": min_approvals_field}
