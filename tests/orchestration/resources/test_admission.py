"""Admission under concurrency limits (DESIGN §6.6), through the engine's services and the API.

No worker is needed: a start decides `running` or `queued` in its own transaction, and an end
hands its slots on in the transaction that ends it.
"""
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from orchestration import engine
from orchestration.engine.admission import admission_reconcile, queue_sweep
from orchestration.models import ConcurrencyPool, IdempotencyRecord, WorkflowInstance
from orchestration.resources.admission import ConcurrencyKeyError, concurrency_key_value, pools_for
from tests.support.helpers import apply_spec

ONE_STEP = [{"id": "work", "action": "noop"}]


def limited(workflow_id="limited", **limits):
    apply_spec({"id": workflow_id, "type": "data", **limits, "steps": ONE_STEP})
    return workflow_id


def start(workflow, context=None, **options):
    return engine.instance_start(workflow=workflow, context=context or {}, actor="test", **options)


def fresh(instance):
    return WorkflowInstance.objects.get(id=instance.id)


def terminate(instance):
    engine.instance_terminate(instance_id=instance.id, actor="test")


def pool(key):
    return ConcurrencyPool.objects.get(key=key)


def test_pools_come_from_every_limit_in_force(settings):
    settings.DAC_MAX_RUNNING = 100
    spec = {"id": "w", "type": "data", "max_concurrent": 5,
            "concurrency": {"key": "{{ context.repo }}", "limit": 1, "strategy": "queue"}}
    pools = pools_for(spec, {"repo": "acme/api"})
    assert [(p.key, p.limit, p.limit_name) for p in pools] == [
        ("global", 100, "DAC_MAX_RUNNING"), ("workflow:w", 5, "max_concurrent"),
        ("key:w:acme/api", 1, "concurrency")]


def test_an_unlimited_workflow_has_no_pool(settings):
    settings.DAC_MAX_RUNNING = 0
    assert pools_for({"id": "w", "type": "data"}, {}) == []


def test_a_concurrency_key_is_rendered_from_the_context_and_long_ones_are_digested():
    assert concurrency_key_value("{{ context.n }}", {"n": 7}) == "7"
    assert concurrency_key_value("{{ context.v }}", {"v": "x" * 500}).startswith("sha256:")
    with pytest.raises(ConcurrencyKeyError, match="concurrency.key"):
        concurrency_key_value("{{ context.missing }}", {})
    with pytest.raises(ConcurrencyKeyError, match="empty key"):
        concurrency_key_value("{{ context.blank }}", {"blank": ""})


def test_a_start_whose_key_cannot_be_rendered_is_refused_and_changes_nothing(db):
    workflow = limited(concurrency={"key": "{{ context.repo }}", "limit": 1})
    with pytest.raises(engine.InvalidRequest, match=r"workflow 'limited': concurrency.key"):
        start(workflow)
    assert not WorkflowInstance.objects.exists()


def test_over_max_concurrent_a_start_is_queued_with_its_limit_and_position(db):
    workflow = limited(max_concurrent=1)
    first, second, third = start(workflow), start(workflow), start(workflow)
    assert fresh(first).status == "running" and fresh(first).holds_slots
    for position, instance in enumerate((second, third), start=1):
        instance = fresh(instance)
        assert instance.status == "queued" and instance.started_at is None
        assert instance.step_runs.get().status == "pending"
        queue = engine_view(instance)["queue"]
        assert queue == {"limit": "max_concurrent", "key": f"workflow:{workflow}", "max": 1, "position": position}
    assert pool(f"workflow:{workflow}").in_use == 1


def engine_view(instance):
    from orchestration import selectors

    return selectors.instance_as_dict(selectors.instance_get(instance.id))


def test_an_end_hands_its_slot_to_the_queued_instance_of_highest_priority_then_oldest(db):
    workflow = limited(max_concurrent=1)
    running = start(workflow)
    low, normal_old, high, normal_new = (start(workflow, priority=p) for p in (2, 5, 7, 5))
    order = []
    for _ in range(4):
        terminate(running)
        running = WorkflowInstance.objects.get(definition__key=workflow, status="running")
        order.append(running.id)
    assert order == [high.id, normal_old.id, normal_new.id, low.id]
    assert fresh(high).started_at is not None and fresh(high).queued_reason is None
    assert pool(f"workflow:{workflow}").in_use == 1


def test_a_queued_instance_can_be_terminated_and_gives_back_nothing(db):
    workflow = limited(max_concurrent=1)
    running, queued = start(workflow), start(workflow)
    terminate(queued)
    assert fresh(queued).status == "terminated" and fresh(running).status == "running"
    assert pool(f"workflow:{workflow}").in_use == 1


def test_a_concurrency_key_limits_each_value_on_its_own(db):
    workflow = limited(concurrency={"key": "{{ context.repo }}", "limit": 1})
    a1, b1, a2 = start(workflow, {"repo": "a"}), start(workflow, {"repo": "b"}), start(workflow, {"repo": "a"})
    assert [fresh(i).status for i in (a1, b1, a2)] == ["running", "running", "queued"]
    assert fresh(a2).queued_reason == {"limit": "concurrency", "key": f"key:{workflow}:a", "max": 1, "value": "a"}
    terminate(b1)
    assert fresh(a2).status == "queued"
    terminate(a1)
    assert fresh(a2).status == "running"


def test_cancel_new_refuses_the_new_start_with_the_reason(db):
    workflow = limited(concurrency={"key": "{{ context.repo }}", "limit": 1, "strategy": "cancel_new"})
    first, refused = start(workflow, {"repo": "a"}), start(workflow, {"repo": "a"})
    refused = fresh(refused)
    assert fresh(first).status == "running"
    assert refused.status == "terminated" and refused.finished_at is not None and not refused.holds_slots
    assert refused.error["type"] == "ConcurrencyLimit" and "cancel_new" in refused.error["message"]
    assert set(refused.step_runs.values_list("status", flat=True)) == {"cancelled"}


def test_cancel_in_progress_terminates_the_oldest_running_and_starts_the_new_one(db):
    workflow = limited(concurrency={"key": "{{ context.repo }}", "limit": 1, "strategy": "cancel_in_progress"})
    old, new = start(workflow, {"repo": "a"}), start(workflow, {"repo": "a"})
    old = fresh(old)
    assert old.status == "terminated" and old.error["type"] == "ConcurrencyCancelled"
    assert str(new.id) in old.error["message"]
    assert fresh(new).status == "running"
    assert pool(f"key:{workflow}:a").in_use == 1


def test_global_and_per_type_limits_hold_across_workflows(db, settings):
    settings.DAC_MAX_RUNNING = 2
    one, two = limited("one"), limited("two")
    a, b, c = start(one), start(two), start(one)
    assert [fresh(i).status for i in (a, b, c)] == ["running", "running", "queued"]
    assert fresh(c).queued_reason["limit"] == "DAC_MAX_RUNNING"
    terminate(b)  # a slot of another workflow frees the global limit
    assert fresh(c).status == "running"


def test_a_retry_over_the_limit_is_queued_until_a_slot_frees(db):
    workflow = limited(max_concurrent=1)
    first = start(workflow)
    with connection.cursor() as cursor:  # fail it as a step would, then fill its slot with another start
        cursor.execute("UPDATE orchestration_workflowinstance SET status = 'failed', holds_slots = false "
                       "WHERE id = %s", [first.id])
        cursor.execute("UPDATE orchestration_concurrencypool SET in_use = 0")
    other = start(workflow)
    engine.instance_retry(instance_id=first.id, actor="test")
    assert fresh(first).status == "queued" and fresh(first).queued_reason["limit"] == "max_concurrent"
    terminate(other)
    assert fresh(first).status == "running" and fresh(first).holds_slots


def test_the_reconciler_frees_the_slot_of_an_instance_that_ended_without_giving_it_back(db):
    workflow = limited(max_concurrent=1)
    dead, queued = start(workflow), start(workflow)
    with connection.cursor() as cursor:  # ended behind the engine's back: its slot is still counted
        cursor.execute("UPDATE orchestration_workflowinstance SET status = 'failed' WHERE id = %s", [dead.id])
    assert queue_sweep() == 0  # the count says full: only a recount can tell
    report = admission_reconcile()
    assert report["slots_freed"] == 1 and report["queued_started"] == 1
    assert fresh(queued).status == "running" and not fresh(dead).holds_slots


def test_the_sweep_starts_queued_instances_when_a_limit_is_raised(db):
    workflow = limited(max_concurrent=1)
    start(workflow)
    queued = start(workflow)
    ConcurrencyPool.objects.filter(key=f"workflow:{workflow}").update(limit=2)
    assert queue_sweep() == 1
    assert fresh(queued).status == "running"


def test_an_idempotency_key_returns_the_instance_it_started(db):
    workflow = limited()
    first = start(workflow, idempotency_key="order-42")
    again = start(workflow, {"other": 1}, idempotency_key="order-42")
    assert again.id == first.id and again.replayed
    assert WorkflowInstance.objects.count() == 1
    with pytest.raises(engine.Conflict, match="already started workflow 'limited'"):
        limited("another")
        start("another", idempotency_key="order-42")
    IdempotencyRecord.objects.filter(key="start:order-42").update(
        created_at=timezone.now() - timezone.timedelta(hours=25))
    assert start(workflow, idempotency_key="order-42").id != first.id


@pytest.mark.parametrize("key", ["", " ", "x" * 201, "tab\there"])
def test_a_malformed_idempotency_key_is_refused(db, key):
    workflow = limited()
    with pytest.raises(engine.InvalidRequest, match="idempotency key"):
        start(workflow, idempotency_key=key)
    assert not WorkflowInstance.objects.exists()


def test_the_api_answers_202_for_a_queued_start_and_replays_an_idempotent_one(api):
    workflow = limited(max_concurrent=1)
    url = f"/api/v1/workflows/{workflow}/run/"
    assert api.post(url, {}, format="json").status_code == 201
    queued = api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert queued.status_code == 202, queued.content
    assert queued.json()["status"] == "queued"
    assert queued.json()["queue"] == {"limit": "max_concurrent", "key": f"workflow:{workflow}", "max": 1,
                                      "position": 1}
    replay = api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.json()["id"] == queued.json()["id"] and replay["Idempotent-Replayed"] == "true"
    bad = api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 300)
    assert bad.status_code == 400 and "idempotency key" in bad.json()["error"]["message"]
    assert WorkflowInstance.objects.count() == 2


def test_the_cli_takes_an_idempotency_key_and_shows_what_holds_a_queued_instance(db):
    workflow = limited(max_concurrent=1)
    start(workflow)
    out = StringIO()
    call_command("dac", "run", workflow, "--idempotency-key", "cli-1", "--priority", "high", stdout=out)
    started = json.loads(out.getvalue())
    assert started["status"] == "queued"
    out = StringIO()
    call_command("dac", "run", workflow, "--idempotency-key", "cli-1", stdout=out)
    assert json.loads(out.getvalue())["id"] == started["id"]
    out = StringIO()
    call_command("dac", "status", started["id"], stdout=out)
    assert f"queued: held by max_concurrent (workflow:{workflow}, 1 at most), position 1" in out.getvalue()
    assert fresh(WorkflowInstance(id=started["id"])).priority == 7


def test_the_console_instance_page_says_what_holds_a_queued_instance(admin_client):
    workflow = limited(max_concurrent=1)
    start(workflow)
    queued = start(workflow)
    page = admin_client.get(f"/admin/orchestration/workflowinstance/{queued.id}/change/")
    assert page.status_code == 200
    assert f"held by max_concurrent (workflow:{workflow}, 1 at most), position 1" in page.content.decode()
