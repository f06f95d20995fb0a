"""Per-workflow budgets (DESIGN §2, §6.6): checked before a step starts and after each attempt;
`fail` fails the instance with compensation, `escalate` holds it behind an intervention
escalation that approve lets past its budget once and reject fails.

Two end-to-end tests run on the real workers; the rest drive the engine in this process.
"""
from decimal import Decimal

from governance.escalations.models import Escalation
from governance.escalations.services import escalation_decide
from orchestration import engine
from orchestration.engine.plan import plan_for_version_id
from orchestration.models import StepItem, UsageLedger, WorkflowInstance
from orchestration.resources.budgets import budget_enforce, budget_state
from tests.support.helpers import apply_spec, finished, start, step, wait_until

from .inprocess import run_to_rest, spend


def fresh(instance):
    return WorkflowInstance.objects.get(id=instance.id)


def budget_gate(instance):
    return Escalation.objects.filter(instance_id=instance.id, rule="budget").first()


def test_over_budget_the_instance_fails_naming_spent_and_budget_and_compensates(live):
    apply_spec({"id": "capped", "type": "data", "budget": {"tokens": 1000}, "steps": [
        spend("a", 400, 200, compensate={"action": "noop"}),
        spend("b", 400, 200, depends_on=["a"], compensate={"action": "noop"}),
        spend("c", 400, 200, depends_on=["b"]),
    ]})
    instance = finished(start("capped"))
    assert instance.status == "failed"
    assert instance.error == {"type": "BudgetExceeded", "message": "budget exceeded: spent 1200 tokens of budget "
                              "1000 tokens", "limit": "tokens", "spent": "1200", "budget": "1000"}
    assert [step(instance, s).status for s in "abc"] == ["compensated", "compensated", "cancelled"]
    # 2 x (400 x 0.00015 + 200 x 0.0006) / 1000 USD, exact, on the instance and in the ledger.
    assert (instance.tokens_in, instance.tokens_out, instance.cost_usd) == (800, 400, Decimal("0.000360"))
    assert sum(r.cost_usd for r in UsageLedger.objects.filter(workflow="capped")) == Decimal("0.000360")


def test_escalate_holds_the_instance_until_approved_then_it_goes_on_past_its_budget(live, people):
    apply_spec({"id": "escalating", "type": "data", "budget": {"cost_usd": 0.0002, "on_exceed": "escalate"},
                "steps": [spend("a", 400, 200), spend("b", 400, 200, depends_on=["a"]),
                          spend("c", 400, 200, depends_on=["b"]), spend("d", 400, 200, depends_on=["c"])]})
    instance = start("escalating")
    gate = wait_until(lambda: budget_gate(instance), message="the budget escalation")
    assert (gate.gate, gate.level, gate.type, gate.status) == ("instance", "intervention", "budget_exceeded", "pending")
    assert (gate.context["limit"], gate.context["spent"], gate.context["budget"]) == ("cost_usd", "0.000360", "0.0002")
    wait_until(lambda: fresh(instance).status == "waiting", message="the instance to wait for the decision")
    assert step(instance, "c").status == "pending"  # held before it started
    escalation_decide(escalation_id=gate.id, decision="approve", actor=people["dave"])
    instance = finished(instance)
    assert (instance.status, instance.cost_usd) == ("completed", Decimal("0.000720"))
    assert Escalation.objects.filter(instance_id=instance.id).count() == 1  # approved once: not asked at each step


def test_rejecting_the_budget_escalation_fails_the_instance(people):
    apply_spec({"id": "refused", "budget": {"tokens": 100, "on_exceed": "escalate"},
                "steps": [spend("a", 100, 50), spend("b", 1, 1, depends_on=["a"])]})
    instance = run_to_rest(start("refused"))
    assert (instance.status, instance.gated, step(instance, "b").status) == ("waiting", True, "pending")
    escalation_decide(escalation_id=budget_gate(instance).id, decision="reject", comment="too dear",
                      actor=people["dave"])
    instance = fresh(instance)
    assert instance.status == "failed"
    assert instance.error == {"type": "Rejected", "message": "rejected by dave: too dear"}
    assert step(instance, "b").status == "cancelled"


def test_an_instance_over_its_budget_starts_no_further_step(db):
    """The check before a step: a retried instance that spent its budget fails again at once."""
    apply_spec({"id": "spent", "budget": {"tokens": 100}, "steps": [spend("a", 100, 50), spend("b", 1, 1,
                                                                                              depends_on=["a"])]})
    instance = run_to_rest(start("spent"))
    assert (instance.status, instance.error["type"], step(instance, "b").status) == ("failed", "BudgetExceeded",
                                                                                      "cancelled")
    engine.instance_retry(instance_id=instance.id, actor="test")
    instance = fresh(instance)
    assert (instance.status, instance.error["message"]) == ("failed", "budget exceeded: spent 150 tokens of budget "
                                                                      "100 tokens")
    assert (step(instance, "b").status, step(instance, "b").attempts) == ("cancelled", 0)


def test_foreach_items_are_checked_after_each_attempt(db):
    apply_spec({"id": "fanout", "budget": {"tokens": 1000},
                "steps": [spend("many", 300, 100, foreach="{{ context.items }}")]})
    instance = run_to_rest(start("fanout", {"items": [0, 1, 2, 3]}))
    assert (instance.status, instance.error["spent"]) == ("failed", "1200")
    items = StepItem.objects.filter(step_run__instance_id=instance.id).order_by("index")
    assert [i.status for i in items] == ["completed", "completed", "completed", "cancelled"]
    assert instance.tokens_in + instance.tokens_out == 1200


def test_budget_state_names_the_first_limit_exceeded():
    def over(tokens_in=0, tokens_out=0, cost="0", **budget):
        instance = WorkflowInstance(tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=Decimal(cost))
        return budget_state(instance, {"budget": budget})

    assert over(60, 40, tokens=100) is None  # spent all of it: not over yet
    assert over(61, 40, tokens=100).as_dict() == {"limit": "tokens", "spent": "101", "budget": "100"}
    assert over(cost="5.000001", tokens=100, cost_usd=5.0).message == "spent $5.000001 of budget $5.0"
    assert over(cost="5.000000", cost_usd=5) is None
    assert budget_state(WorkflowInstance(), {"budget": None}) is None
    assert budget_state(WorkflowInstance(), {}) is None  # a spec stored before budgets


def test_a_workflow_without_budget_pays_no_query(db, django_assert_num_queries):
    apply_spec({"id": "free", "steps": [{"id": "a", "action": "noop"}]})
    instance = start("free")
    instance.tokens_in = 10 ** 9
    plan = plan_for_version_id(instance.version_id)
    with django_assert_num_queries(0):
        assert budget_enforce(instance, plan) is False
