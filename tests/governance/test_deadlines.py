"""Deadlines and escalation ladders (DESIGN §7.1): applied by beat's sweep, once, however many
sweeps race."""
import os
import signal
import threading

import pytest
from django.db import connection
from django.utils import timezone

from governance.escalations.deadlines import escalation_time_out, escalations_sweep
from governance.escalations.models import Escalation
from governance.escalations.services import escalation_decide
from tests.support.helpers import apply_spec, finished, start, step, wait_until


def gated(timeout_action, *, seconds=3600, escalate_to=None, options=None):
    approval = {"approvers": ["tech_lead"], "timeout_seconds": seconds, "timeout_action": timeout_action}
    if escalate_to:
        approval["escalate_to"] = escalate_to
    if options:
        approval["options"] = options
    apply_spec({"id": f"deadline-{timeout_action}", "steps": [
        {"id": "ship", "action": "echo", "with": {"v": 1}, "approval": approval}]})
    instance = start(f"deadline-{timeout_action}")
    gate = wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, status="pending").first(),
                      message="the gate")
    return instance, gate


def overdue(gate):
    Escalation.objects.filter(id=gate.id).update(deadline=timezone.now() - timezone.timedelta(seconds=1))


def test_a_deadline_in_the_future_changes_nothing(live, people):
    instance, gate = gated("reject")
    assert escalations_sweep() == {"escalations_timed_out": 0, "conditions_fired": 0}
    assert escalation_time_out(escalation_id=gate.id) is None
    gate.refresh_from_db()
    assert gate.status == "pending"
    assert abs((gate.deadline - gate.created_at).total_seconds() - 3600) < 1


@pytest.mark.parametrize("action, options, resolution, outcome", [
    ("approve", None, "approved", "completed"),
    ("approve", ["ship", "hold", "reject"], "ship", "completed"),
    ("reject", None, "rejected", "failed"),
])
def test_timeout_action_decides_by_policy(live, people, action, options, resolution, outcome):
    instance, gate = gated(action, options=options)
    overdue(gate)
    assert escalations_sweep()["escalations_timed_out"] == 1
    gate.refresh_from_db()
    assert (gate.status, gate.resolution, gate.resolved_by) == ("resolved", resolution, "policy:timeout")
    assert finished(instance).status == outcome


def test_escalate_expires_the_gate_and_raises_an_intervention_for_escalate_to(live, people):
    instance, gate = gated("escalate", escalate_to=["finance"])
    overdue(gate)
    successor = escalation_time_out(escalation_id=gate.id)
    gate.refresh_from_db()
    assert (gate.status, gate.closed_reason) == ("expired", "deadline passed: escalated")
    assert (successor.level, successor.status, successor.approvers, successor.previous_id) == (
        "intervention", "pending", ["finance"], gate.id)
    assert successor.step_run_id == gate.step_run_id and successor.deadline is None
    assert step(instance, "ship").status == "waiting_approval"  # still parked, now behind the intervention
    with pytest.raises(Exception, match="none of the approver groups"):
        escalation_decide(escalation_id=successor.id, decision="approve", actor=people["alice"])
    escalation_decide(escalation_id=successor.id, decision="approve", actor=people["carol"])
    assert finished(instance).status == "completed"


def test_racing_sweeps_act_once(live, people):
    instance, gate = gated("escalate", escalate_to=["finance"])
    overdue(gate)
    results, barrier = [], threading.Barrier(4)

    def sweep():
        barrier.wait()
        try:
            results.append(escalation_time_out(escalation_id=gate.id))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(1 for r in results if r is not None) == 1
    assert Escalation.objects.filter(instance_id=instance.id).count() == 2
    assert Escalation.objects.filter(instance_id=instance.id, status="pending", level="intervention").count() == 1


def test_beat_applies_a_deadline_within_five_seconds(live, people):
    first, warm_up = gated("approve")
    overdue(warm_up)  # beat's first sweep applies this one: then beat is known to be running
    beat = live.spawn(["beat", "-l", "warning", "-s", "/tmp/dac-test-beat-schedule-escalations"], "beat-escalations")
    try:
        wait_until(lambda: Escalation.objects.filter(id=warm_up.id, status="resolved").exists(), timeout=60,
                   message="beat's first sweep")
        instance, gate = gated("approve", seconds=2)
        resolved = wait_until(lambda: Escalation.objects.filter(id=gate.id, status="resolved").first(), timeout=30,
                              message="beat's sweep to apply the deadline")
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=30)
    lateness = (resolved.resolved_at - resolved.deadline).total_seconds()
    assert 0 <= lateness <= 5, lateness
    assert finished(instance).status == "completed" and finished(first).status == "completed"
