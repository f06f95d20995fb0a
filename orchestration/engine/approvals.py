"""Approval gates in the engine (DESIGN §7.1): which steps wait for a human, what they show, and
what a decision does. The escalation itself belongs to `governance.escalations`; only this
module moves the gated step or instance. Everything here runs under the instance row lock.
"""
import json

from django.utils import timezone

from orchestration import canvas, templating
from orchestration.models import StepItem, StepRun
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

from . import lifecycle
from .scope import mask


class Governance:
    """The governance view of one advance: the workflow's policy, read once and only if needed."""

    def __init__(self, instance):
        self.instance = instance
        self._policy = None
        self._stamp = None

    def stamped(self, blueprint_id, updated_at):
        """The policy is the one of this blueprint state, read by the caller's statement with the
        instance row (`transitions.step_complete`), rather than looked up through Redis."""
        self._stamp = (blueprint_id, updated_at)
        return self

    @classmethod
    def of(cls, instance):
        """One view per loaded instance (per transaction): the policy is read once."""
        view = instance.__dict__.get("_dac_governance")
        if view is None:
            view = instance.__dict__["_dac_governance"] = cls(instance)
        return view

    @property
    def policy(self):
        if self._policy is None:
            from governance.escalations.policy import policy_for_blueprint_stamp, policy_for_definition

            self._policy = (policy_for_blueprint_stamp(*self._stamp) if self._stamp is not None
                            else policy_for_definition(self.instance.definition_id))
        return self._policy

    def holds_instance(self, plan, step=None):
        """Whether a `require_approval` condition gates the instance now (before `step`, or before
        it finishes when `step` is None). Notices (`notify_*`) are raised on the way."""
        if self.instance.gated:
            return True
        if not self.policy.escalations:
            return False
        from governance.escalations.gates import conditions_fire

        return conditions_fire(self.instance, plan, self.policy, step)

    def gate_step(self, plan, runs, run, step):
        """Park `run` behind an approval escalation when it needs one; True when parked. An
        approval decided by policy at once lets it run, carrying the decision."""
        if not step["approval"] and not step["agent"] and not self.policy.watches_steps:
            return False
        from governance.escalations.facts import InstanceFacts
        from governance.escalations.gates import open_step_gate, step_requirement

        requirement = step_requirement(step, self.policy, InstanceFacts(self.instance, plan, step),
                                       agent_requires=_agent_requires_approval(step))
        if requirement is None:
            return False
        shown = shown_to_approvers(self.instance, plan, runs, run, step)
        decision = open_step_gate(self.instance, plan, run, step, requirement, shown)
        if decision is not None:
            from governance.escalations.proof import inputs_digest

            run.decision = {**decision, "inputs_sha256": inputs_digest(shown)}
            StepRun.objects.filter(id=run.id).update(decision=run.decision, approved_by=decision["by"])
            return False
        run.status = S.WAITING_APPROVAL
        run.save(update_fields=["status", "item_count"])
        return True


def _agent_requires_approval(step):
    if not step["agent"]:
        return False
    from registry.models import Agent, AgentRisk

    return Agent.objects.filter(name=step["agent"], risk=AgentRisk.APPROVAL_REQUIRED).exists()


def shown_to_approvers(instance, plan, runs, run, step):
    """What the escalation shows: the step's resolved inputs (secrets masked), its foreach items,
    or the child it would start. A template that cannot render is shown as its error."""
    from .advance import _scope, step_kind

    scope = _scope(instance, plan, runs)
    try:
        if step["foreach"] is not None:
            items = StepItem.objects.filter(step_run=run).order_by("index").values_list("item", flat=True)
            shown = {"items": list(items), "with": step["with"]}
        elif step_kind(step) == canvas.SPAWN:
            context = templating.render_value(step["spawn"]["context"] or {}, scope, plan.step_ids)
            shown = {"spawn": {"workflow": step["spawn"]["workflow"], "context": context}}
        elif step_kind(step) == canvas.WAIT:
            shown = {"wait_for": step["wait_for"]}
        else:
            shown = {"inputs": templating.render_value(step["with"], scope, plan.step_ids)}
    except templating.TemplateError as exc:
        shown = {"inputs_error": str(exc)}
    return mask(shown, scope["secrets"].used_values())


def may_read_own_decision(step):
    """Whether the step's inputs might name the step itself (`steps.<id>.decision`): a cheap,
    generous test; a false positive only costs one more rendering."""
    return step["id"] in json.dumps(step["with"])


def approval_granted(instance, plan, step_run_id, decision, effects):
    """A gate's escalation resolved with an option that lets the step run. False if it is not
    parked any more (a stale decision changes nothing)."""
    from .advance import advance, dispatch_for

    run = StepRun.objects.filter(id=step_run_id, status=S.WAITING_APPROVAL).first()
    if run is None:
        return False
    run.status, run.ready_at = S.READY, timezone.now()
    run.decision = decision
    run.approved_by, run.decision_comment = decision["by"], decision.get("comment") or ""
    run.save(update_fields=["status", "ready_at", "decision", "approved_by", "decision_comment"])
    if instance.status != I.PAUSED:
        effects.dispatches.append(dispatch_for(instance, plan, run))
    advance(instance, plan, effects)
    return True


def approval_refused(instance, plan, step_run_id, decision, effects):
    """A gate's escalation rejected (or timed out with reject): the step fails."""
    from .advance import advance

    run = StepRun.objects.filter(id=step_run_id, status=S.WAITING_APPROVAL).first()
    if run is None:
        return False
    run.status, run.finished_at = S.FAILED, timezone.now()
    run.decision = decision
    run.approved_by, run.decision_comment = decision["by"], decision.get("comment") or ""
    run.error = {"type": "Rejected", "message": f"rejected by {decision['by']}"
                 + (f": {decision['comment']}" if decision.get("comment") else "")}
    run.save(update_fields=["status", "finished_at", "decision", "approved_by", "decision_comment", "error"])
    lifecycle.step_ended(instance, plan.spec["id"], run.step_id, S.FAILED)
    advance(instance, plan, effects)
    return True


def instance_gate_lifted(instance, plan, *, approved, decision, effects):
    """An instance-level gate decided: approve lets its next steps start; reject fails it (with
    compensation of what completed)."""
    from .advance import advance

    if not instance.gated:
        return False
    instance.gated = False
    if not approved:
        instance.failing = True
        instance.error = {"type": "Rejected", "message": f"rejected by {decision['by']}"
                          + (f": {decision['comment']}" if decision.get("comment") else "")}
    advance(instance, plan, effects)
    return True
