"""Crash safety with real processes: killed workers, duplicated messages, a flushed Redis,
a restarted PostgreSQL. The database is the source of truth; the reconciler re-dispatches."""
import os
import shutil
import signal
import subprocess
import threading

import pytest
import redis
from django.conf import settings
from django.db import connection

from dacproject.celery import app
from orchestration import engine
from orchestration.models import Event, StepAttempt, StepRun
from orchestration.tasks import run_step
from tests.support.helpers import apply_spec, finished, queue_length, start, step, step_reaches, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def fast_reconcile(settings):
    """The reconciler, as run here in the test process, treats anything as lost at once."""
    settings.DAC_RECONCILE_READY_AFTER_SECONDS = 0
    settings.DAC_HEARTBEAT_STALE_SECONDS = 2
    return settings


def _active_task(hostname, step_run_id):
    for task in (app.control.inspect(destination=[hostname], timeout=1).active() or {}).get(hostname, []):
        if task["name"] == "orchestration.tasks.run_step" and task["args"][0] == step_run_id:
            return task
    return None


def test_kill_9_of_the_pool_process_running_a_step_redelivers_it_and_the_instance_completes(live):
    apply_spec({"id": "crashy", "steps": [
        {"id": "work", "action": "sleep", "with": {"seconds": 2}},
        {"id": "after", "action": "echo", "with": {"done": True}, "depends_on": ["work"]},
    ]})
    instance = start("crashy")
    run = step_reaches(instance, "work", "running")
    task = wait_until(lambda: _active_task(live.default, run.id), message="the step's task to be active")
    os.kill(task["worker_pid"], signal.SIGKILL)
    instance = finished(instance, timeout=60)
    assert instance.status == "completed"
    assert step(instance, "work").status == "completed"
    assert StepAttempt.objects.filter(step_run=run).count() == 1  # the same attempt, run again


def test_kill_9_of_a_whole_worker_is_recovered_from_its_stale_heartbeat(live, fast_reconcile):
    apply_spec({"id": "lost-worker", "steps": [
        {"id": "work", "action": "sleep", "with": {"seconds": 30}, "queue": "fragile"},
        {"id": "after", "action": "noop", "depends_on": ["work"]},
    ]})
    doomed = live.start(queues="fragile", concurrency=1)
    instance = start("lost-worker")
    run = step_reaches(instance, "work", "running")
    live.stop(doomed, kill=True)
    # Nothing heart-beats for the step any more; its message sits unacknowledged in Redis.
    wait_until(lambda: engine.reconcile().recovered_stale == 1, timeout=20, interval=0.5,
               message="the reconciler to recover the stale step")
    lost = StepAttempt.objects.get(step_run=run, number=1)
    assert lost.error_type == "WorkerLost"
    assert step(instance, "work").attempt_base == 1  # the lost try is not charged to the retry budget
    rescuer = live.start(queues="fragile", concurrency=1)
    try:
        wait_until(lambda: StepAttempt.objects.filter(step_run=run, number=2).exists(), timeout=30,
                   message="attempt 2 on the new worker")
        engine.instance_terminate(instance_id=instance.id, actor="test")  # no need to sleep 30 s
    finally:
        live.quiesce()
        live.stop(rescuer)
    assert StepAttempt.objects.get(step_run=run, number=2).worker == rescuer


def test_a_duplicated_step_message_never_completes_a_step_twice_nor_dispatches_a_dependent_twice(live):
    apply_spec({"id": "dupes", "steps": [
        {"id": "work", "action": "sleep", "with": {"seconds": 1.5}, "emit": ["work.done"]},
        {"id": "after", "action": "echo", "with": {"n": 1}, "depends_on": ["work"]},
    ]})
    instance = start("dupes")
    run = step_reaches(instance, "work", "running")
    # The same message again (same task id, same attempt) while the first delivery runs.
    run_step.apply_async(args=(run.id, run.attempts), task_id=run.task_id)
    instance = finished(instance)
    assert instance.status == "completed"
    wait_until(lambda: not any((app.control.inspect(timeout=1).active() or {}).values()), message="idle workers")
    assert Event.objects.filter(source_instance_id=instance.id, event_type="work.done").count() == 1
    after = step(instance, "after")
    assert after.attempts == 1
    assert StepAttempt.objects.filter(step_run=after).count() == 1
    assert step(instance, "work").completed_seq == 1 and after.completed_seq == 2
    # And a late duplicate of a finished step changes nothing.
    finished_at = step(instance, "work").finished_at
    run_step.apply_async(args=(run.id, run.attempts), task_id=run.task_id).forget()
    run_step.apply_async(args=(run.id, run.attempts + 1))
    wait_until(lambda: queue_length("default") == 0, message="the duplicates to be consumed")
    wait_until(lambda: not any((app.control.inspect(timeout=1).active() or {}).values()), message="idle workers")
    assert step(instance, "work").finished_at == finished_at
    assert StepAttempt.objects.filter(step_run=run).count() == 1


def test_after_redis_loses_every_queued_message_the_reconciler_redispatches_from_the_database(live, fast_reconcile):
    apply_spec({"id": "flushed", "steps": [
        {"id": "first", "action": "echo", "with": {"v": 1}},
        {"id": "plain", "action": "echo", "with": {"v": "{{ steps.first.output.v }}"}, "depends_on": ["first"],
         "queue": "flushme"},
        {"id": "fan", "action": "echo", "foreach": [1, 2, 3], "with": {"x": "{{ item }}"}, "depends_on": ["first"],
         "queue": "flushme", "max_parallel": 2},
        {"id": "last", "action": "noop", "depends_on": ["plain", "fan"]},
    ]})
    instance = start("flushed")
    step_reaches(instance, "plain", "ready")
    step_reaches(instance, "fan", "ready")
    # plain's message and the first item of each of fan's two lanes: all three, before the flush.
    wait_until(lambda: queue_length("flushme") == 3, message="messages queued for flushme")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # FLUSHALL, limited to the suite's database
    assert queue_length("flushme") == 0
    helper = live.start(queues="flushme")
    try:
        report = engine.reconcile()
        assert report.redispatched == 2
        instance = finished(instance)
    finally:
        live.quiesce()
        live.stop(helper)
    assert instance.status == "completed"
    assert step(instance, "fan").output == [{"x": 1}, {"x": 2}, {"x": 3}]


def test_a_lost_chord_join_is_completed_by_the_reconciler(live, fast_reconcile):
    apply_spec({"id": "joinless", "steps": [
        {"id": "fan", "action": "echo", "foreach": [1, 2], "with": {"x": "{{ item }}"}},
    ]})
    instance = start("joinless")
    wait_until(lambda: StepRun.objects.filter(instance_id=instance.id, step_id="fan").first().items.filter(
        status="completed").count() == 2, message="both items")
    finished(instance)  # the chord joined normally; now simulate a join that never came
    StepRun.objects.filter(instance_id=instance.id).update(status="running", output=None, finished_at=None)
    type(instance).objects.filter(id=instance.id).update(status="running", finished_at=None)
    assert engine.reconcile().joined == 1
    assert finished(instance).status == "completed"


def test_concurrent_reconcilers_dispatch_a_lost_step_once(live, fast_reconcile):
    apply_spec({"id": "twice", "steps": [{"id": "s", "action": "noop", "queue": "nobody"}]})
    instance = start("twice")
    step_reaches(instance, "s", "ready")
    results = []

    def one_pass():
        results.append(engine.reconcile().redispatched)
        connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 1
    assert queue_length("nobody") == 2  # the original message and exactly one re-dispatch
    engine.instance_terminate(instance_id=instance.id, actor="test")


def test_the_periodic_reconciler_on_beat_recovers_without_anyone_calling_it(live):
    apply_spec({"id": "beaten", "steps": [
        {"id": "a", "action": "noop", "queue": "late"},
    ]})
    instance = start("beaten")
    step_reaches(instance, "a", "ready")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    helper = live.start(queues="late")
    beat = live.spawn(["beat", "-l", "warning", "-s", "/tmp/dac-test-beat-schedule"], "beat",
                      env={"DAC_RECONCILE_INTERVAL_SECONDS": "1", "DAC_RECONCILE_READY_AFTER_SECONDS": "1"})
    try:
        assert finished(instance, timeout=30).status == "completed"
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=30)
        live.stop(helper)


def test_workers_beat_a_long_steps_heart(live):
    apply_spec({"id": "longish", "steps": [{"id": "s", "action": "sleep", "with": {"seconds": 6}}]})
    instance = start("longish")
    run = step_reaches(instance, "s", "running")
    first = run.heartbeat_at
    beat = wait_until(lambda: StepRun.objects.filter(id=run.id, heartbeat_at__gt=first).first(), timeout=10,
                      message="a fresher heartbeat")
    assert beat.status == "running"
    engine.instance_terminate(instance_id=instance.id, actor="test")


def _restart_postgres():
    clusters = os.listdir("/etc/postgresql")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", clusters[0], "main", "restart"], check=True,
                   capture_output=True, timeout=120)


@pytest.mark.skipif(not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"),
                    reason="needs a local PostgreSQL cluster managed by pg_ctlcluster")
def test_workers_recover_by_themselves_from_a_postgresql_restart(live):
    apply_spec({"id": "pg-restart", "steps": [
        {"id": "before", "action": "noop"},
        {"id": "during", "action": "sleep", "with": {"seconds": 2}, "depends_on": ["before"]},
        {"id": "after", "action": "echo", "with": {"ok": True}, "depends_on": ["during"]},
    ]})
    instance = start("pg-restart")
    step_reaches(instance, "during", "running")
    _restart_postgres()
    connection.close()  # this test process's own connection died with the server
    instance = finished(instance, timeout=90)
    assert instance.status == "completed"
    assert step(instance, "after").output == {"ok": True}


def test_a_failing_instance_does_not_wait_forever_for_foreach_items_that_never_start(live):
    apply_spec({"id": "fail-while-mapping", "steps": [
        {"id": "each", "action": "sleep", "foreach": [0.5, 0.5, 0.5], "max_parallel": 1,
         "with": {"seconds": "{{ item }}"}},
        {"id": "bad", "action": "fail", "with": {"message": "boom"}},
    ]})
    instance = finished(start("fail-while-mapping"), timeout=30)
    assert instance.status == "failed"
    assert step(instance, "each").status == "cancelled"


def test_lost_tries_beyond_the_free_recoveries_count_against_the_retry_budget(live, fast_reconcile):
    apply_spec({"id": "doomed", "steps": [{"id": "s", "action": "noop", "queue": "void"}]})
    instance = start("doomed")
    run = step_reaches(instance, "s", "ready")
    from django.utils import timezone

    stale = timezone.now() - timezone.timedelta(minutes=5)
    StepRun.objects.filter(id=run.id).update(status="running", attempts=1, heartbeat_at=stale,
                                             recoveries=fast_reconcile.DAC_FREE_RECOVERIES)
    assert engine.reconcile().recovered_stale == 1
    instance = finished(instance)
    assert instance.status == "failed"
    assert step(instance, "s").error["type"] == "WorkerLost"
