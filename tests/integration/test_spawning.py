"""Child workflows (DESIGN §6.3): the four strategies, foreach children, pipelines, cascading
terminate, and a parent parked on a child whose end notice was lost."""
import pytest
from django.utils import timezone

from dacproject.celery import app
from governance.escalations.services import step_decide
from orchestration import engine
from orchestration.events.models import Event
from orchestration.models import StepRun, WorkflowInstance
from orchestration.spawning import tasks as spawn_tasks
from orchestration.spawning.reconcile import spawning_reconcile
from tests.support.helpers import apply_spec, finished, start, step, step_reaches, wait_until

pytestmark = pytest.mark.integration

CHILD = {"id": "child", "steps": [
    {"id": "work", "action": "echo", "with": {"n": "{{ context.n }}", "doubled": "{{ context.n * 2 }}"}},
]}
GATED_CHILD = {"id": "gated-child", "steps": [
    {"id": "gate", "action": "echo", "with": {"n": "{{ context.n }}"}, "approval": True}]}


def parent(strategy="wait", **spawn):
    return {"id": f"parent-{strategy}", "steps": [
        {"id": "call", "spawn": {"workflow": spawn.pop("workflow", "child"), "context": {"n": "{{ context.n }}"},
                                 "strategy": strategy, **spawn}},
        {"id": "after", "action": "echo", "with": {"got": "{{ steps.call.output }}"}, "depends_on": ["call"]},
    ]}


def children_of(instance):
    return list(WorkflowInstance.objects.filter(parent_id=instance.id).order_by("created_at"))


def parked_on_a_gated_child(n):
    """A `wait` parent parked on its child, which is parked on an approval: (parent, child)."""
    apply_spec(GATED_CHILD)
    apply_spec(parent(workflow="gated-child"))
    instance = start("parent-wait", {"n": n})
    step_reaches(instance, "call", "waiting_child")
    (child,) = wait_until(lambda: children_of(instance), message="the child")
    step_reaches(child, "gate", "waiting_approval")
    return instance, child


def test_wait_parks_the_parent_without_a_worker_and_the_childs_end_completes_the_step(live):
    instance, child = parked_on_a_gated_child(3)
    wait_until(lambda: not any((app.control.inspect(timeout=1).active() or {}).values()), message="idle workers")
    assert WorkflowInstance.objects.get(id=instance.id).status == "waiting"
    assert child.trigger == {"type": "spawn", "parent": str(instance.id), "step": "call", "strategy": "wait",
                             "restart": 0}
    assert child.correlation_id == instance.correlation_id and child.priority == instance.priority
    step_decide(instance_id=child.id, step_id="gate", decision="approve", actor="test")
    instance = finished(instance)
    assert instance.status == "completed"
    assert step(instance, "call").output == {"gate": {"n": 3}}
    assert instance.result == {"after": {"got": {"gate": {"n": 3}}}}
    # A second notice of the same end changes nothing.
    spawn_tasks.child_ended.delay(str(child.id))
    wait_until(lambda: not any((app.control.inspect(timeout=1).active() or {}).values()), message="idle workers")
    assert Event.objects.filter(source_instance_id=instance.id, event_type="step.completed",
                                payload__step="call").count() == 1


def test_a_failed_child_fails_the_wait_step_and_its_retry_spawns_a_new_child(live):
    apply_spec({"id": "flaky-child", "steps": [
        {"id": "work", "action": "fail", "with": {"times": "{{ 1 if context.first else 0 }}"}}]})
    apply_spec({"id": "retrying-parent", "steps": [
        {"id": "call", "spawn": {"workflow": "flaky-child", "context": {"first": "{{ true }}"}},
         "retry": {"max_attempts": 2, "base_seconds": 0.1, "jitter": False}}]})
    apply_spec({"id": "failing-parent", "steps": [{"id": "call", "spawn": {"workflow": "flaky-child",
                                                                         "context": {"first": True}}}]})
    failing = finished(start("failing-parent"))
    assert failing.status == "failed"
    assert step(failing, "call").error["type"] == "ChildFailed"
    assert "failed on purpose" in step(failing, "call").error["message"]
    retrying = finished(start("retrying-parent"))
    assert retrying.status == "failed"  # both children fail: `first` is true for every spawn
    assert [c.spawn_attempt for c in children_of(retrying)] == [1, 2]


def test_supervised_restarts_a_failed_child_until_one_succeeds_or_restarts_run_out(live):
    apply_spec({"id": "crashy-child", "steps": [
        {"id": "work", "action": "fail", "with": {"times": "{{ 1 if trigger.restart < context.crashes else 0 }}"}}]})
    apply_spec({"id": "supervisor", "steps": [
        {"id": "call", "spawn": {"workflow": "crashy-child", "strategy": "supervised", "max_restarts": 2,
                                 "context": {"crashes": "{{ context.crashes }}"}}}]})
    healed = finished(start("supervisor", {"crashes": 2}))
    assert healed.status == "completed"
    assert [(c.spawn_restart, c.status) for c in children_of(healed)] == [(0, "failed"), (1, "failed"),
                                                                         (2, "completed")]
    given_up = finished(start("supervisor", {"crashes": 5}))
    assert given_up.status == "failed"
    assert len(children_of(given_up)) == 3
    assert "after 2 restart(s)" in step(given_up, "call").error["message"]


def test_callback_completes_at_once_and_the_childs_end_is_an_event_correlated_to_the_parent(live):
    apply_spec(GATED_CHILD)
    apply_spec({"id": "caller", "steps": [
        {"id": "call", "spawn": {"workflow": "gated-child", "strategy": "callback", "context": {"n": 5}}},
        {"id": "hear", "depends_on": ["call"],
         "wait_for": {"event": "workflow.child.completed", "correlation_id": "{{ instance.id }}"}},
    ]})
    instance = start("caller")
    step_reaches(instance, "hear", "waiting_event")
    (child,) = children_of(instance)
    assert step(instance, "call").output == {"child": str(child.id)}
    step_decide(instance_id=child.id, step_id="gate", decision="approve", actor="test")
    instance = finished(instance)
    assert instance.status == "completed"
    heard = step(instance, "hear").output
    assert heard["correlation_id"] == str(instance.id)
    assert heard["payload"]["instance"] == str(child.id) and heard["payload"]["result"] == {"gate": {"n": 5}}


def test_fire_and_forget_children_outlive_their_parent_but_wait_children_are_terminated_with_it(live):
    apply_spec(GATED_CHILD)  # children that stay active (parked on their gate) until decided
    apply_spec({"id": "family", "steps": [
        {"id": "forget", "spawn": {"workflow": "gated-child", "strategy": "fire_and_forget"}},
        {"id": "keep", "spawn": {"workflow": "gated-child", "strategy": "wait"}},
        {"id": "watch", "spawn": {"workflow": "gated-child", "strategy": "supervised"}},
    ]})
    instance = start("family")
    step_reaches(instance, "watch", "waiting_child")
    step_reaches(instance, "keep", "waiting_child")
    wait_until(lambda: len(children_of(instance)) == 3, message="three children")
    engine.instance_terminate(instance_id=instance.id, actor="test")
    kids = {WorkflowInstance.objects.get(id=c.id).parent_step_run.step_id: WorkflowInstance.objects.get(id=c.id)
            for c in children_of(instance)}
    assert kids["keep"].status == kids["watch"].status == "terminated"
    assert kids["forget"].status in ("running", "waiting")
    assert step(instance, "forget").output == {"child": str(kids["forget"].id)}
    engine.instance_terminate(instance_id=kids["forget"].id, actor="test")


def test_spawn_foreach_runs_max_parallel_children_and_returns_results_in_item_order(live):
    apply_spec({"id": "sleepy-child", "steps": [
        {"id": "work", "action": "sleep", "with": {"seconds": "{{ context.s }}"}},
        {"id": "out", "action": "echo", "with": {"n": "{{ context.n }}"}, "depends_on": ["work"]}]})
    apply_spec({"id": "fan-out", "steps": [
        {"id": "each", "foreach": "{{ context.items }}", "max_parallel": 2,
         "spawn": {"workflow": "sleepy-child", "context": {"n": "{{ item }}", "s": "{{ 0.3 if index == 0 else 0 }}"}}},
    ]})
    instance = start("fan-out", {"items": [10, 20, 30, 40, 50]})
    peak = [0]

    def done():
        running = WorkflowInstance.objects.filter(parent_id=instance.id, status__in=["running", "waiting"]).count()
        peak[0] = max(peak[0], running)
        return WorkflowInstance.objects.get(id=instance.id).status == "completed"

    wait_until(done, interval=0.01, message="the fan-out to complete")
    assert step(instance, "each").output == [{"out": {"n": n}} for n in (10, 20, 30, 40, 50)]
    assert 1 <= peak[0] <= 2
    assert sorted(c.parent_item_index for c in children_of(instance)) == [0, 1, 2, 3, 4]


def test_spawn_steps_chained_by_depends_on_are_a_pipeline(live):
    apply_spec(CHILD)
    apply_spec({"id": "pipeline", "steps": [
        {"id": "one", "spawn": {"workflow": "child", "context": {"n": "{{ context.n }}"}}},
        {"id": "two", "spawn": {"workflow": "child", "context": {"n": "{{ steps.one.output.work.doubled }}"}},
         "depends_on": ["one"]},
    ]})
    instance = finished(start("pipeline", {"n": 3}))
    assert instance.result == {"two": {"work": {"n": 6, "doubled": 12}}}


def test_the_reconciler_resumes_a_parent_parked_on_a_child_whose_end_notice_was_lost(live):
    instance, child = parked_on_a_gated_child(8)
    # The child's end is committed, but the process died before it sent the notice.
    WorkflowInstance.objects.filter(id=child.id).update(status="completed", result={"gate": {"n": 8}},
                                                        finished_at=timezone.now())
    assert spawning_reconcile(settle=timezone.timedelta(0))["parents_resumed"] == 1
    assert spawning_reconcile(settle=timezone.timedelta(0))["parents_resumed"] == 0
    instance = finished(instance)
    assert step(instance, "call").output == {"gate": {"n": 8}}
    assert StepRun.objects.get(instance_id=instance.id, step_id="after").attempts == 1


def test_a_failed_parent_restarts_no_supervised_child(live):
    apply_spec(GATED_CHILD)
    apply_spec({"id": "doomed-parent", "steps": [
        {"id": "watch", "spawn": {"workflow": "gated-child", "strategy": "supervised", "context": {"n": 1}}},
        {"id": "gate", "action": "noop", "approval": True},
    ]})
    instance = start("doomed-parent")
    step_reaches(instance, "watch", "waiting_child")
    step_reaches(instance, "gate", "waiting_approval")
    step_decide(instance_id=instance.id, step_id="gate", decision="reject", actor="test", comment="stop")
    instance = finished(instance)
    assert instance.status == "failed"
    wait_until(lambda: not any((app.control.inspect(timeout=1).active() or {}).values()), message="idle workers")
    assert [(c.spawn_restart, c.status) for c in children_of(instance)] == [(0, "terminated")]


def test_a_supervised_restart_that_cannot_start_fails_the_step(live):
    apply_spec({"id": "brittle-child", "steps": [{"id": "gate", "action": "noop", "approval": True}]})
    apply_spec({"id": "supervising", "steps": [
        {"id": "watch", "spawn": {"workflow": "brittle-child", "strategy": "supervised"}}]})
    instance = start("supervising")
    (child,) = wait_until(lambda: children_of(instance), message="the child")
    step_reaches(child, "gate", "waiting_approval")
    apply_spec({"id": "brittle-child", "type": "operations"})  # a new version without steps
    step_decide(instance_id=child.id, step_id="gate", decision="reject", actor="test", comment="stop")
    instance = finished(instance)
    assert instance.status == "failed"
    assert "could not be restarted" in step(instance, "watch").error["message"]
