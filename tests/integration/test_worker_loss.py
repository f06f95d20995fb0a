"""A whole worker killed mid-step (issue 11): its steps are recovered from its liveness row within
seconds, not from each step's age; a long step on a live worker is never taken for lost.

The sweep is the beat task's body, called here in a polling loop; nothing runs the reconciler, so
the per-step stale-heartbeat path cannot be what recovers anything."""
import pytest

from dacproject.celery import app
from orchestration import selectors
from orchestration.models import StepAttempt, StepItem, StepRun
from orchestration.workers.models import WorkerBeat
from orchestration.workers.tasks import workers_sweep
from tests.support.helpers import apply_spec, finished, start, step, step_reaches, wait_until

pytestmark = pytest.mark.integration

SLOW_FIRST = "python:tests.support.pyactions.slow_first"


def test_kill_9_of_a_whole_worker_is_noticed_from_its_beat_and_the_instance_completes_on_another(live, settings):
    settings.DAC_HEARTBEAT_STALE_SECONDS = 600  # the per-step threshold cannot be what recovers
    apply_spec({"id": "worker-killed", "steps": [
        {"id": "work", "action": SLOW_FIRST, "with": {"seconds": 600}, "queue": "doomed"},
        {"id": "fan", "action": SLOW_FIRST, "foreach": [600], "with": {"seconds": "{{ item }}"}, "queue": "doomed"},
        {"id": "after", "action": "noop", "depends_on": ["work", "fan"]},
    ]})
    doomed = live.start(queues="doomed", concurrency=2)
    assert WorkerBeat.objects.filter(hostname=doomed).exists()  # written before it consumes anything
    instance = start("worker-killed")
    work = step_reaches(instance, "work", "running")
    fan = step_reaches(instance, "fan", "running")
    wait_until(lambda: StepItem.objects.filter(step_run=fan, status="running").exists(), message="the item running")
    # The session's worker takes the queue over; the doomed one holds both messages unacknowledged.
    app.control.add_consumer("doomed", destination=[live.default], reply=True, timeout=2)
    try:
        live.stop(doomed, kill=True)  # the main process and its pool processes at once
        wait_until(lambda: workers_sweep() and selectors.instance_is_finished(instance.id), timeout=25,
                   interval=0.5, message="the instance to complete after the sweep recovered its steps")
    finally:
        app.control.cancel_consumer("doomed", destination=[live.default], reply=True, timeout=2)
    assert finished(instance).status == "completed"
    lost = StepAttempt.objects.get(step_run=work, item_index=None, number=1)
    assert (lost.worker, lost.error_type) == (doomed, "WorkerLost")
    assert StepAttempt.objects.get(step_run=work, item_index=None, number=2).worker == live.default
    assert step(instance, "work").recoveries == 1
    lost_item = StepAttempt.objects.get(step_run=fan, item_index=0, number=1)
    assert (lost_item.worker, lost_item.error_type) == (doomed, "WorkerLost")
    assert StepAttempt.objects.get(step_run=fan, item_index=0, number=2).worker == live.default


def test_a_step_running_longer_than_the_lost_threshold_on_a_live_worker_is_never_recovered(live, settings):
    seconds = settings.DAC_WORKER_LOST_SECONDS + 3
    apply_spec({"id": "slow-but-alive", "steps": [
        {"id": "work", "action": "sleep", "with": {"seconds": seconds}},
        {"id": "fan", "action": "sleep", "foreach": [seconds], "with": {"seconds": "{{ item }}"}},
    ]})
    instance = start("slow-but-alive")
    work = step_reaches(instance, "work", "running")
    fan = step_reaches(instance, "fan", "running")
    swept = []

    def sweep_with_stale_step_heartbeats():
        # Only the worker's own beat may count: make the steps' heartbeats look dead every time.
        old = work.heartbeat_at.replace(year=2000)
        StepRun.objects.filter(id=work.id, status="running").update(heartbeat_at=old)
        StepItem.objects.filter(step_run=fan, status="running").update(heartbeat_at=old)
        swept.append(workers_sweep())
        return selectors.instance_is_finished(instance.id)

    wait_until(sweep_with_stale_step_heartbeats, timeout=seconds + 20, interval=0.5, message="the slow steps to end")
    assert finished(instance).status == "completed"
    assert len(swept) > seconds  # it swept all along, past the lost threshold
    assert not any(any(done.values()) for done in swept)
    assert step(instance, "work").recoveries == 0
    assert StepAttempt.objects.filter(step_run=work).count() == 1
    assert StepAttempt.objects.filter(step_run=fan).count() == 1


def test_a_worker_beats_its_row_while_it_runs_and_deletes_it_when_it_stops_cleanly(live):
    hostname = live.start(queues="spare", concurrency=1)
    row = WorkerBeat.objects.filter(hostname=hostname)
    first = row.get().beat_at
    wait_until(lambda: row.get().beat_at > first, timeout=15, message="the worker's next beat")
    live.stop(hostname)  # warm shutdown
    assert not row.exists()
