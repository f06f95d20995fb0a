"""Pause, resume, terminate, retry, approvals and the instance deadline, on real workers."""
import pytest
from django.utils import timezone

from governance.escalations.models import Escalation
from governance.escalations.services import step_decide
from governance.models import AuditEntry
from orchestration import engine
from orchestration.models import StepAttempt, WorkflowInstance
from orchestration.tasks import sweep_timeouts
from tests.support.helpers import apply_spec, finished, start, step, step_reaches, wait_until

pytestmark = pytest.mark.integration

GATED = {"id": "gated", "steps": [
    {"id": "prepare", "action": "echo", "with": {"v": 1}},
    {"id": "ship", "action": "echo", "with": {"shipped": "{{ steps.prepare.output.v }}"}, "depends_on": ["prepare"],
     "approval": {"type": "production_deployment", "approvers": ["tech_lead"]}},
    {"id": "after", "action": "noop", "depends_on": ["ship"]},
]}


def test_approval_parks_the_step_and_approve_resumes_it_with_an_audit_of_who(live):
    apply_spec(GATED)
    instance = start("gated")
    step_reaches(instance, "ship", "waiting_approval")
    wait_until(lambda: WorkflowInstance.objects.get(id=instance.id).status == "waiting", message="waiting")
    step_decide(instance_id=instance.id, step_id="ship", decision="approve", actor="alice", comment="go")
    instance = finished(instance)
    assert instance.status == "completed"
    assert step(instance, "ship").output == {"shipped": 1}
    assert step(instance, "ship").approved_by == "alice"
    gate = Escalation.objects.get(instance=instance, step_id="ship")
    assert (gate.status, gate.resolution, gate.resolved_by) == ("resolved", "approved", "alice")
    entry = AuditEntry.objects.get(verb="escalation.decide")
    assert (entry.actor_name, entry.target_id) == ("alice", str(gate.id))
    assert entry.details["decision"] == "approve" and entry.details["comment"] == "go"
    assert entry.details["shown_sha256"] == gate.decisions.get().shown_sha256


def test_reject_fails_the_parked_step_and_the_instance(live):
    apply_spec(GATED)
    instance = start("gated")
    step_reaches(instance, "ship", "waiting_approval")
    step_decide(instance_id=instance.id, step_id="ship", decision="reject", actor="bob", comment="not today")
    instance = finished(instance)
    assert instance.status == "failed"
    assert step(instance, "ship").error == {"type": "Rejected", "message": "rejected by bob: not today"}
    assert step(instance, "after").status == "cancelled"


def test_a_decision_on_a_step_that_is_not_waiting_is_refused_and_changes_nothing(live):
    apply_spec(GATED)
    instance = start("gated")
    step_reaches(instance, "ship", "waiting_approval")
    with pytest.raises(engine.Conflict, match="prepare"):
        step_decide(instance_id=instance.id, step_id="prepare", decision="approve", actor="x")
    with pytest.raises(engine.NotFound):
        step_decide(instance_id=instance.id, step_id="nope", decision="approve", actor="x")
    assert not AuditEntry.objects.filter(verb="escalation.decide").exists()


def test_when_false_skips_an_approval_step_without_asking_anyone(live):
    apply_spec({"id": "skip-gate", "steps": [
        {"id": "g", "action": "noop", "approval": True, "when": "{{ context.risky }}"},
    ]})
    instance = finished(start("skip-gate", {"risky": False}))
    assert instance.status == "completed"
    assert step(instance, "g").status == "skipped"


def test_pause_holds_new_steps_and_resume_continues(live):
    apply_spec({"id": "pausable", "steps": [
        {"id": "first", "action": "sleep", "with": {"seconds": 1}},
        {"id": "second", "action": "noop", "depends_on": ["first"]},
    ]})
    instance = start("pausable")
    step_reaches(instance, "first", "running")
    engine.instance_pause(instance_id=instance.id, actor="ops")
    step_reaches(instance, "first", "completed")
    # The running step finished; its dependent became ready but does not start while paused.
    step_reaches(instance, "second", "ready")
    assert WorkflowInstance.objects.get(id=instance.id).status == "paused"
    assert not StepAttempt.objects.filter(step_run__instance_id=instance.id, step_run__step_id="second").exists()
    engine.instance_resume(instance_id=instance.id, actor="ops")
    assert finished(instance).status == "completed"


def test_terminate_revokes_running_work_and_cancels_the_rest(live):
    apply_spec({"id": "long", "steps": [
        {"id": "forever", "action": "sleep", "with": {"seconds": 60}},
        {"id": "after", "action": "noop", "depends_on": ["forever"]},
    ]})
    instance = start("long")
    step_reaches(instance, "forever", "running")
    engine.instance_terminate(instance_id=instance.id, actor="ops")
    instance = finished(instance)
    assert instance.status == "terminated"
    assert {step(instance, s).status for s in ("forever", "after")} == {"cancelled"}
    with pytest.raises(engine.Conflict):
        engine.instance_terminate(instance_id=instance.id, actor="ops")


def test_retry_reruns_failed_steps_and_reuses_completed_outputs(live):
    apply_spec({"id": "retryable", "steps": [
        {"id": "fetch", "action": "echo", "with": {"v": 7}},
        {"id": "flaky", "action": "fail", "with": {"times": 1}, "depends_on": ["fetch"]},
        {"id": "use", "action": "echo", "with": {"v": "{{ steps.fetch.output.v }}"}, "depends_on": ["flaky"]},
    ]})
    instance = finished(start("retryable"))
    assert instance.status == "failed"
    fetch_finished = step(instance, "fetch").finished_at
    engine.instance_retry(instance_id=instance.id, actor="ops")
    instance = finished(instance)
    assert instance.status == "completed"
    assert step(instance, "fetch").finished_at == fetch_finished  # reused, not re-run
    assert step(instance, "flaky").output == {"attempt": 2}
    assert step(instance, "use").output == {"v": 7}
    assert StepAttempt.objects.filter(step_run__instance_id=instance.id, step_run__step_id="fetch").count() == 1


def test_retry_of_a_running_instance_is_refused(live):
    apply_spec(GATED)
    instance = start("gated")
    with pytest.raises(engine.Conflict, match="only failed or timed-out"):
        engine.instance_retry(instance_id=instance.id, actor="ops")


def test_the_periodic_sweep_times_out_instances_past_their_deadline(live):
    apply_spec({"id": "deadline", "timeout_minutes": 1, "steps": [
        {"id": "wait", "action": "noop", "approval": True},
    ]})
    instance = start("deadline")
    step_reaches(instance, "wait", "waiting_approval")
    WorkflowInstance.objects.filter(id=instance.id).update(deadline_at=timezone.now())
    sweep_timeouts.delay()  # what beat sends every DAC_SWEEP_INTERVAL_SECONDS
    instance = finished(instance)
    assert instance.status == "timed_out"
    assert step(instance, "wait").status == "cancelled"
    assert "timeout_minutes=1" in instance.error["message"]


def test_starting_an_unknown_or_stepless_workflow_is_a_clear_error(live):
    with pytest.raises(engine.NotFound, match="'ghost' is not registered"):
        start("ghost")
    apply_spec({"id": "empty-shell", "type": "operations"})
    with pytest.raises(engine.InvalidRequest, match="has no steps"):
        start("empty-shell")
    assert not WorkflowInstance.objects.exists()


def test_an_instance_refuses_to_start_when_its_stored_spec_was_tampered_with(live):
    apply_spec(GATED)
    from registry.models import WorkflowVersion

    version = WorkflowVersion.objects.get(definition__key="gated")
    WorkflowVersion.objects.filter(id=version.id).update(spec={**version.spec, "description": "edited"})
    with pytest.raises(engine.Conflict, match="sha256"):
        start("gated")


def test_a_left_over_compensation_does_not_undo_steps_a_retry_reuses(live):
    apply_spec({"id": "reused", "steps": [
        {"id": "a", "action": "echo", "with": {"v": 1}, "compensate": {"action": "noop"}},
        {"id": "b", "action": "fail", "with": {"times": 1}, "depends_on": ["a"]},
    ]})
    instance = finished(start("reused"))
    assert step(instance, "a").status == "compensated"
    engine.instance_retry(instance_id=instance.id, actor="ops")
    assert finished(instance).status == "completed"
    # A compensation message from the first round, delivered late, changes nothing now.
    engine.step_compensate_mark(step_run_id=step(instance, "a").id)
    assert step(instance, "a").status == "completed"


def test_resuming_a_paused_instance_whose_saga_runs_does_not_end_it_early(live):
    apply_spec({"id": "slow-saga", "steps": [
        {"id": "a", "action": "noop", "compensate": {"action": "sleep", "with": {"seconds": 1}}},
        {"id": "b", "action": "fail", "depends_on": ["a"]},
    ]})
    instance = start("slow-saga")
    step_reaches(instance, "b", "failed")
    wait_until(lambda: WorkflowInstance.objects.get(id=instance.id).compensation_started, message="saga start")
    if WorkflowInstance.objects.get(id=instance.id).status != "failed":
        with pytest.raises(engine.Conflict):
            engine.instance_pause(instance_id=instance.id, actor="ops")  # a failing instance cannot pause
    instance = finished(instance)
    assert instance.status == "failed"
    assert step(instance, "a").status == "compensated"
