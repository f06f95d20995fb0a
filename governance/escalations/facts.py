"""What governance conditions see about an instance (DESIGN §7.2), computed only when read."""
from collections.abc import Mapping
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone


def step_operations(step):
    """The governance types a step has: its `operation` and its approval's `type`."""
    if step is None:
        return frozenset()
    approval = step["approval"] if isinstance(step["approval"], dict) else {}
    return frozenset(t for t in (step.get("operation"), approval.get("type")) if t)


class InstanceFacts(Mapping):
    """Lazily computed facts: a condition reads only the names it needs (cost is a query)."""

    NAMES = ("workflow_duration", "cost_estimate", "tokens_used", "step", "workflow", "workflow_type",
             "operation", "operations", "context")

    def __init__(self, instance, plan, step=None):
        self.instance, self.plan, self.step = instance, plan, step
        self._values = {}

    def __getitem__(self, name):
        if name not in self._values:
            if name not in self.NAMES:
                raise KeyError(name)
            self._values[name] = getattr(self, f"_{name}")()
        return self._values[name]

    def __iter__(self):
        return iter(self.NAMES)

    def __len__(self):
        return len(self.NAMES)

    def _workflow_duration(self):
        started = self.instance.started_at or self.instance.created_at
        return Decimal(str(round((timezone.now() - started).total_seconds(), 3)))

    def _spend(self):
        from orchestration.models import StepAttempt

        if "_spend" not in self._values:
            self._values["_spend"] = StepAttempt.objects.filter(step_run__instance_id=self.instance.id).aggregate(
                cost=Sum("cost_usd"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"))
        return self._values["_spend"]

    def _cost_estimate(self):
        return self._spend()["cost"] or Decimal("0")

    def _tokens_used(self):
        spend = self._spend()
        return (spend["tokens_in"] or 0) + (spend["tokens_out"] or 0)

    def _step(self):
        return self.step["id"] if self.step else None

    def _workflow(self):
        return self.plan.spec["id"]

    def _workflow_type(self):
        return self.plan.spec.get("type") or ""

    def _operation(self):
        step = self.step
        if step is None:
            return None
        approval = step["approval"] if isinstance(step["approval"], dict) else {}
        return step.get("operation") or approval.get("type") or None

    def _operations(self):
        return step_operations(self.step)

    def _context(self):
        return self.instance.context or {}

    def shown(self, names):
        """The facts a condition read, as JSON for the escalation's context."""
        return {n: (str(self[n]) if isinstance(self[n], Decimal) else self[n])
                for n in sorted(names) if n in self.NAMES and n not in ("context", "operations")}
