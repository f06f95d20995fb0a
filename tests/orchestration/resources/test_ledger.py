"""The cost ledger (DESIGN §6.6): each attempt's tokens and USD counted once, in exact decimals,
on its instance and in the per-minute ledger, rolled up by day, workflow and type.

The engine runs in this process (tests/orchestration/resources/inprocess.py): no worker needed.
"""
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from orchestration import engine, selectors
from orchestration.engine.execute import run_attempt
from orchestration.models import StepAttempt, StepItem, StepRun, UsageLedger, WorkflowInstance
from orchestration.resources.ledger import usage_record
from orchestration.resources.selectors import cost_ledger, type_tokens_last_hour
from tests.support.helpers import apply_spec, start

from .inprocess import claim_step, run_to_rest, spend

pytestmark = pytest.mark.django_db


def totals(instance):
    instance = WorkflowInstance.objects.get(id=instance.id)
    return instance.tokens_in, instance.tokens_out, instance.cost_usd


def ledger_sums(workflow):
    return UsageLedger.objects.filter(workflow=workflow).aggregate(
        tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost_usd=Sum("cost_usd"), attempts=Sum("attempts"))


def test_every_attempt_counts_once_in_exact_decimals_on_the_instance_and_in_the_ledger():
    apply_spec({"id": "ledgered", "type": "data", "steps": [
        spend("a", 1000, 500),
        spend("b", 333, 77, depends_on=["a"]),  # 0.00009615 USD: stored to the micro-dollar, as the attempt is
        spend("c", 200, 100, fail=True, depends_on=["a"], retry=2, on_error="continue"),  # both attempts spent
        spend("d", 100, 50, depends_on=["a"], foreach="{{ context.items }}"),
        {"id": "free", "action": "noop", "depends_on": ["b"]},
    ]})
    instance = run_to_rest(start("ledgered", {"items": [1, 2]}))
    assert instance.status == "completed"
    assert totals(instance) == (1000 + 333 + 2 * 200 + 2 * 100, 500 + 77 + 2 * 100 + 2 * 50, Decimal("0.000816"))
    assert isinstance(instance.cost_usd, Decimal)
    attempts = StepAttempt.objects.filter(step_run__instance_id=instance.id)
    assert attempts.aggregate(cost=Sum("cost_usd"))["cost"] == instance.cost_usd
    assert ledger_sums("ledgered") == {"tokens_in": 1933, "tokens_out": 877, "cost_usd": Decimal("0.000816"),
                                       "attempts": 6}  # `free` spent nothing: not an attempt of the ledger
    assert set(UsageLedger.objects.values_list("workflow_type", flat=True)) == {"data"}
    usage = {"tokens_in": 1933, "tokens_out": 877, "cost_usd": "0.000816"}
    assert selectors.instance_as_dict(selectors.instance_get(instance.id))["usage"] == usage
    api = APIClient()
    api.force_authenticate(get_user_model().objects.create_user("operator"))
    assert api.get(f"/api/v1/instances/{instance.id}/").json()["usage"] == usage


def test_an_instance_that_spent_nothing_keeps_the_status_shape():
    apply_spec({"id": "frugal", "steps": [{"id": "a", "action": "noop"}]})
    instance = run_to_rest(start("frugal"))
    assert instance.status == "completed" and totals(instance) == (0, 0, Decimal("0"))
    assert "usage" not in selectors.instance_as_dict(selectors.instance_get(instance.id))
    assert not UsageLedger.objects.exists()


def test_a_redelivered_outcome_counts_nothing_twice():
    """At-least-once delivery: the same finished attempt applied twice (success, failure, item)."""
    apply_spec({"id": "twice", "type": "data", "steps": [
        spend("ok", 100, 10),
        spend("bad", 100, 10, fail=True),
        spend("many", 100, 10, foreach="{{ context.items }}", depends_on=["ok"]),
    ]})
    instance = start("twice", {"items": [0]})
    for step_id in ("ok", "bad"):
        claim = claim_step(instance, step_id)
        outcome = run_attempt(claim)
        engine.step_attempt_finish(claim=claim, outcome=outcome)
        assert engine.step_attempt_finish(claim=claim, outcome=outcome) == engine.Finish()
    run = StepRun.objects.get(instance_id=instance.id, step_id="many")
    assert run.status == "cancelled"  # `bad` failed the instance before `many` could start
    assert totals(instance) == (200, 20, Decimal("0.000042"))
    assert ledger_sums("twice")["attempts"] == 2


def test_a_redelivered_item_outcome_counts_nothing_twice():
    apply_spec({"id": "items", "type": "data", "steps": [spend("many", 100, 10, foreach="{{ context.items }}")]})
    instance = start("items", {"items": [0, 1]})
    run = StepRun.objects.get(instance_id=instance.id, step_id="many")
    claim = engine.item_claim(step_run_id=run.id, index=0, attempt=1, task_id="item-0", worker="test")
    outcome = run_attempt(claim)
    for _ in range(2):
        engine.item_attempt_finish(claim=claim, outcome=outcome)
    assert StepItem.objects.get(step_run=run, index=0).status == "completed"
    assert totals(instance) == (100, 10, Decimal("0.000021"))
    assert ledger_sums("items")["attempts"] == 1


def test_costs_are_rolled_up_by_day_workflow_and_type_in_exact_decimals():
    day = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timezone.timedelta(days=3)
    rows = [(day, "review", "development", 10, 1, "0.000001"), (day + timezone.timedelta(minutes=1), "review",
            "development", 20, 2, "0.100001"), (day, "triage", "support", 5, 5, "1.333333"),
            (day + timezone.timedelta(days=1), "triage", "support", 1, 1, "0.000002")]
    UsageLedger.objects.bulk_create(UsageLedger(minute=m, workflow=w, workflow_type=t, tokens_in=i, tokens_out=o,
                                                cost_usd=Decimal(c), attempts=1) for m, w, t, i, o, c in rows)
    since, until = day - timezone.timedelta(hours=12), day + timezone.timedelta(days=2)
    assert cost_ledger(since=since, until=until, group_by="day") == [
        {"day": day.date(), "tokens_in": 35, "tokens_out": 8, "cost_usd": Decimal("1.433335"), "attempts": 3},
        {"day": (day + timezone.timedelta(days=1)).date(), "tokens_in": 1, "tokens_out": 1,
         "cost_usd": Decimal("0.000002"), "attempts": 1}]
    assert [(r["workflow"], r["cost_usd"]) for r in cost_ledger(since=since, until=until, group_by="workflow")] == [
        ("review", Decimal("0.100002")), ("triage", Decimal("1.333335"))]
    assert [(r["type"], r["tokens_in"]) for r in cost_ledger(since=day, until=day + timezone.timedelta(hours=1),
                                                             group_by="type")] == [("development", 30), ("support", 5)]
    with pytest.raises(ValueError, match="group_by must be one of day, workflow, type"):
        cost_ledger(since=since, until=until, group_by="month")


def test_a_types_tokens_of_the_last_hour_leave_it_as_the_hour_moves_on():
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes_ago, tokens in ((0, 1), (59, 10), (60, 100), (61, 1000)):
        UsageLedger.objects.create(minute=now - timezone.timedelta(minutes=minutes_ago), workflow=f"w{minutes_ago}",
                                   workflow_type="data", tokens_in=tokens, tokens_out=tokens)
    assert type_tokens_last_hour("data") == 2 * (1 + 10)
    assert type_tokens_last_hour("support") == 0


def test_nothing_to_count_costs_no_query(django_assert_num_queries):
    from orchestration.actions.registry import Usage

    with django_assert_num_queries(0):
        assert usage_record(instance=None, plan=None, usage=Usage()) is False
