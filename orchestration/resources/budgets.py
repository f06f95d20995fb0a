"""Per-workflow budgets (DESIGN §2 `budget`, §6.6): `{tokens, cost_usd, on_exceed: fail|escalate}`,
checked before a step becomes ready and after each attempt's usage is counted, against the
instance's totals (kept on its row by the ledger, so the check itself reads nothing).

`fail`: the instance fails with BudgetExceeded (running steps finish, completed ones are
compensated). `escalate`: an `intervention` escalation gates the instance's next steps;
approving it lets the instance go on past its budget (it is not asked again), rejecting it fails
the instance. Everything here runs under the instance row lock.
"""
from dataclasses import dataclass
from decimal import Decimal

BUDGET_RULE = "budget"  # the escalation's rule: at most one per instance


@dataclass(frozen=True)
class Exceeded:
    """The limit an instance went over: `tokens` (in + out) or `cost_usd`."""

    limit: str
    spent: object
    budget: object

    @property
    def message(self):
        if self.limit == "tokens":
            return f"spent {self.spent} tokens of budget {self.budget} tokens"
        return f"spent ${self.spent} of budget ${self.budget}"

    def as_dict(self):
        return {"limit": self.limit, "spent": str(self.spent), "budget": str(self.budget)}


def budget_state(instance, spec):
    """None while the instance is within its workflow's budget (or it has none), else the first
    limit it exceeded."""
    budget = spec.get("budget")
    if not budget:
        return None
    tokens = budget.get("tokens")
    spent_tokens = instance.tokens_in + instance.tokens_out
    if tokens is not None and spent_tokens > tokens:
        return Exceeded("tokens", spent_tokens, tokens)
    cost = budget.get("cost_usd")
    if cost is not None and instance.cost_usd > Decimal(str(cost)):
        return Exceeded("cost_usd", instance.cost_usd, Decimal(str(cost)))
    return None


def budget_enforce(instance, plan):
    """Apply `on_exceed` if the instance is over its budget; True when its next steps must not
    start (it fails, or waits for the escalation's decision)."""
    exceeded = budget_state(instance, plan.spec)
    if exceeded is None or instance.failing:
        return False
    if (plan.spec["budget"].get("on_exceed") or "fail") == "escalate":
        if instance.gated:
            return True
        from governance.escalations.models import Escalation

        decided = Escalation.objects.filter(instance_id=instance.id, rule=BUDGET_RULE).values_list(
            "resolution", flat=True).first()
        if decided is None:
            _escalate(instance, plan, exceeded)
            return True
        if decided == "approved":
            return False
        # Rejected (or closed when the instance ended, then retried): the budget stands.
    instance.failing = True
    instance.error = {"type": "BudgetExceeded", "message": f"budget exceeded: {exceeded.message}",
                      **exceeded.as_dict()}
    return True


def _escalate(instance, plan, exceeded):
    from governance.escalations.gates import instance_escalation_open
    from governance.escalations.policy import default_approvers
    from orchestration.engine.approvals import Governance

    workflow = plan.spec["id"]
    instance_escalation_open(
        instance, workflow, rule=BUDGET_RULE, level="intervention", kind="budget_exceeded", gates=True,
        title=f"{workflow}: over budget ({exceeded.message})",
        description="Approve to let the instance go on past its budget; reject to fail it (completed steps "
                    "are compensated).",
        context={**exceeded.as_dict(), "usage": {"tokens_in": instance.tokens_in, "tokens_out": instance.tokens_out,
                                                 "cost_usd": str(instance.cost_usd)}},
        approvers=default_approvers(Governance.of(instance).policy),
    )
