"""Which workers the sweep takes for lost, from their liveness rows (issue 11): a stale beat, a
missing row (then the step's own heartbeat decides), a fresh beat. Rows and steps are written
here; no worker runs, and the messages a recovery would send are never committed."""
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestration.models import StepAttempt, StepItem, StepRun, WorkflowInstance
from orchestration.workers.models import WorkerBeat
from orchestration.workers.services import _lost_steps, worker_register, workers_lost_recover
from tests.support.helpers import apply_spec, start

pytestmark = pytest.mark.django_db


def beat(hostname, age):
    """A worker's row whose last beat is `age` seconds old."""
    at = timezone.now() - timedelta(seconds=age)
    WorkerBeat.objects.create(hostname=hostname, pid=1, started_at=at - timedelta(minutes=1), beat_at=at)


def running_step(worker, *, heartbeat_age=0):
    """A plain step running attempt 1 on `worker`, its heartbeat `heartbeat_age` seconds old."""
    apply_spec({"id": "held", "steps": [{"id": "work", "action": "noop", "queue": "nobody"}]})
    run = StepRun.objects.get(instance=start("held"), step_id="work")
    at = timezone.now() - timedelta(seconds=heartbeat_age)
    StepRun.objects.filter(id=run.id).update(status="running", attempts=1, worker=worker, heartbeat_at=at,
                                             started_at=at)
    StepAttempt.objects.create(step_run=run, number=1, worker=worker, started_at=at)
    return run


def running_items(workers):
    """A foreach step whose item i runs attempt 1 on workers[i]."""
    apply_spec({"id": "fanned", "steps": [
        {"id": "fan", "action": "noop", "foreach": list(range(len(workers))), "queue": "nobody"}]})
    run = StepRun.objects.get(instance=start("fanned"), step_id="fan")
    now = timezone.now()
    StepRun.objects.filter(id=run.id).update(status="running", attempts=1, started_at=now)
    for index, worker in enumerate(workers):
        StepItem.objects.filter(step_run=run, index=index).update(status="running", attempts=1, heartbeat_at=now)
        StepAttempt.objects.create(step_run=run, item_index=index, number=1, worker=worker, started_at=now)
    return run


def test_a_worker_whose_beat_is_stale_is_lost_and_its_step_goes_back_to_ready_once():
    beat("alive@h", 0)
    beat("gone@h", 60)
    run = running_step("gone@h")
    assert workers_lost_recover()["steps_recovered"] == 1
    run.refresh_from_db()
    assert (run.status, run.recoveries, run.attempt_base) == ("ready", 1, 1)  # a free recovery
    assert StepAttempt.objects.get(step_run=run, number=1).error_type == "WorkerLost"
    assert workers_lost_recover()["steps_recovered"] == 0  # a repeated sweep finds nothing more


@pytest.mark.parametrize(("rows", "worker", "heartbeat_age"), [
    pytest.param({"alive@h": 0}, "alive@h", 3600, id="fresh beat, however old the step's heartbeat"),
    pytest.param({"alive@h": 0}, "ghost@h", 0, id="no row, fresh step heartbeat"),
    pytest.param({"alive@h": 0}, "ghost@h", 8, id="no row, heartbeat within lost + heartbeat interval"),
    pytest.param({"alive@h": 0}, "", 3600, id="claimed without a worker name: the per-step path's"),
    pytest.param({"a@h": 60, "b@h": 61}, "a@h", 3600, id="every beat equally late: a database outage"),
    pytest.param({}, "ghost@h", 3600, id="no row at all: nothing to judge against"),
])
def test_not_lost(rows, worker, heartbeat_age):
    for hostname, age in rows.items():
        beat(hostname, age)
    run = running_step(worker, heartbeat_age=heartbeat_age)
    assert workers_lost_recover()["steps_recovered"] == 0
    assert StepRun.objects.get(id=run.id).status == "running"


def test_a_step_of_a_named_worker_without_a_row_is_lost_once_its_own_heartbeat_is_old():
    beat("alive@h", 0)
    run = running_step("ghost@h", heartbeat_age=60)
    assert workers_lost_recover()["steps_recovered"] == 1
    assert StepRun.objects.get(id=run.id).status == "ready"


def test_only_the_foreach_items_of_a_lost_worker_run_again():
    beat("alive@h", 0)
    beat("gone@h", 60)
    run = running_items(["gone@h", "alive@h"])
    assert workers_lost_recover()["foreach_rerun"] == 1
    items = dict(StepItem.objects.filter(step_run=run).values_list("index", "status"))
    assert items == {0: "ready", 1: "running"}
    lost = StepAttempt.objects.get(step_run=run, item_index=0, number=1)
    assert (lost.status, lost.error_type) == ("failed", "WorkerLost")
    assert StepAttempt.objects.get(step_run=run, item_index=1, number=1).status == "running"
    assert workers_lost_recover()["foreach_rerun"] == 0


def test_a_lost_workers_step_in_a_failing_instance_is_cancelled():
    beat("alive@h", 0)
    beat("gone@h", 60)
    run = running_step("gone@h")
    WorkflowInstance.objects.filter(id=run.instance_id).update(failing=True)
    assert workers_lost_recover()["steps_settled"] == 1
    assert StepRun.objects.get(id=run.id).status == "cancelled"


def test_a_worker_restarted_under_its_name_recovers_what_its_previous_process_left_running(settings):
    beat("same@h", settings.DAC_WORKER_LOST_SECONDS + 1)  # the previous process's row, no longer beating
    run = running_step("same@h")
    assert worker_register(hostname="same@h", pid=4242)["steps_recovered"] == 1
    assert StepRun.objects.get(id=run.id).status == "ready"
    row = WorkerBeat.objects.get(hostname="same@h")
    assert row.pid == 4242 and row.beat_at > timezone.now() - timedelta(seconds=30)


def test_a_second_worker_started_under_a_live_workers_name_recovers_nothing_and_says_so(caplog):
    beat("same@h", 1)  # another process (pid 1) beat under this name a second ago: it may be alive
    run = running_step("same@h")
    assert worker_register(hostname="same@h", pid=4242)["steps_recovered"] == 0
    assert StepRun.objects.get(id=run.id).status == "running"
    assert any(r.levelname == "ERROR" and "own name" in r.getMessage() for r in caplog.records)


def test_a_lost_worker_that_comes_back_is_alive_again_for_the_recoveries_already_under_way(settings):
    """The sweep's predicate is a subquery: each recovery's transaction sees the row as it is then."""
    beat("back@h", 60)
    run = running_step("back@h")
    cutoff = timezone.now() - timedelta(seconds=settings.DAC_WORKER_LOST_SECONDS)
    lost = _lost_steps(cutoff, ["back@h"], cutoff)
    assert StepRun.objects.filter(lost, id=run.id).exists()
    WorkerBeat.objects.filter(hostname="back@h").update(beat_at=timezone.now())  # it registered again
    assert not StepRun.objects.filter(lost, id=run.id).exists()
