"""Parking: a thousand instances waiting on approvals hold no worker and no broker message."""
import pytest

from dacproject.celery import app
from governance.escalations.services import step_decide
from orchestration.models import StepRun, WorkflowInstance
from tests.support.helpers import apply_spec, queue_length, start, wait_until

pytestmark = pytest.mark.integration

N = 1000


def test_a_thousand_parked_approvals_leave_two_worker_processes_idle_then_all_complete(live):
    apply_spec({"id": "parked", "steps": [
        {"id": "prepare", "action": "echo", "with": {"n": "{{ context.n }}"}},
        {"id": "gate", "action": "echo", "with": {"n": "{{ steps.prepare.output.n }}"}, "depends_on": ["prepare"],
         "approval": {"type": "routine"}},
    ]})
    ids = [start("parked", {"n": i}).id for i in range(N)]
    wait_until(lambda: StepRun.objects.filter(step_id="gate", status="waiting_approval").count() == N,
               timeout=180, interval=0.5, message=f"{N} parked approvals")
    assert WorkflowInstance.objects.filter(status="waiting").count() == N

    # Parked means parked: no task running or reserved on the two processes, nothing queued.
    inspector = app.control.inspect(destination=[live.default], timeout=2)
    assert inspector.active() == {live.default: []}
    assert inspector.reserved() == {live.default: []}
    assert queue_length("default") == 0

    for instance_id in ids:
        step_decide(instance_id=instance_id, step_id="gate", decision="approve", actor="approver")
    wait_until(lambda: WorkflowInstance.objects.filter(status="completed").count() == N,
               timeout=180, interval=0.5, message=f"{N} instances to complete")
    assert sorted(WorkflowInstance.objects.values_list("result__gate__n", flat=True)) == list(range(N))
