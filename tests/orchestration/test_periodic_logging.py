"""Beat's housekeeping tasks log at INFO only when they did something, and say what (issue 10.8);
Celery's own per-run lines for them are dropped, every other task's stay."""
import logging
from datetime import timedelta

import pytest
from celery.app import trace
from django.conf import settings
from django.db import connection
from django.utils import timezone

from dacproject.logfilters import QuietPeriodicTasks
from governance import tasks as governance_tasks
from governance.escalations import tasks as escalation_tasks
from orchestration import engine, tasks
from orchestration.events.schedules import FIRE_TASK
from orchestration.models import ConcurrencyPool, IdempotencyRecord, WorkflowInstance
from orchestration.periodic import describe
from orchestration.resources import tasks as resource_tasks
from orchestration.workers import tasks as worker_tasks
from tests.support.helpers import apply_spec

PERIODIC = {
    "orchestration.tasks.reconcile": tasks.reconcile,
    "orchestration.tasks.sweep_timeouts": tasks.sweep_timeouts,
    "orchestration.resources.tasks.resources_sweep": resource_tasks.resources_sweep,
    "orchestration.workers.tasks.workers_sweep": worker_tasks.workers_sweep,
    "governance.escalations.tasks.escalations_sweep": escalation_tasks.escalations_sweep,
    "governance.tasks.audit_seal": governance_tasks.audit_seal,
}


def info_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


def limited_workflow():
    apply_spec({"id": "limited", "type": "data", "max_concurrent": 1, "steps": [{"id": "work", "action": "noop"}]})
    return [engine.instance_start(workflow="limited", context={}, actor="test") for _ in range(2)]


def test_every_beat_task_is_covered_here():
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} == set(PERIODIC)


def test_with_nothing_to_do_the_periodic_tasks_log_nothing_at_info(db, caplog):
    with caplog.at_level(logging.DEBUG):
        for task in PERIODIC.values():
            task()  # in-process, as the worker runs it
    assert info_lines(caplog) == []
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    for name in ("reconcile", "timeout sweep", "resources sweep"):
        assert f"{name}: nothing to do" in debug


def test_a_timeout_sweep_that_did_something_says_what_in_one_info_line(db, caplog):
    IdempotencyRecord.objects.create(key="old", created_at=timezone.now() - timedelta(days=2))
    with caplog.at_level(logging.DEBUG):
        tasks.sweep_timeouts()
    assert info_lines(caplog) == ["timeout sweep: forgot 1 expired idempotency key"]


def test_a_resources_sweep_that_started_a_queued_instance_says_so(db, caplog):
    first, queued = limited_workflow()
    ConcurrencyPool.objects.filter(key="workflow:limited").update(limit=2)
    with caplog.at_level(logging.DEBUG):
        assert resource_tasks.resources_sweep()["queued_started"] == 1
    assert info_lines(caplog) == ["resources sweep: started 1 queued instance"]
    assert WorkflowInstance.objects.get(id=queued.id).status == "running"


def test_a_reconcile_that_freed_a_slot_says_what_it_did_in_one_info_line(db, caplog):
    dead, queued = limited_workflow()
    with connection.cursor() as cursor:  # ended behind the engine's back: its slot is still counted
        cursor.execute("UPDATE orchestration_workflowinstance SET status = 'failed' WHERE id = %s", [dead.id])
    with caplog.at_level(logging.DEBUG):
        done = tasks.reconcile()
    assert done["slots_freed"] == 1 and done["queued_started"] == 1
    (line,) = info_lines(caplog)
    assert line.startswith("reconcile: ")
    assert "freed 1 concurrency slot" in line and "started 1 queued instance" in line


def test_describe_names_each_non_zero_count_with_its_verb_and_number():
    assert describe({"redispatched": 2, "recovered_stale": 1, "joined": 0}) == (
        "re-sent 2 ready steps, recovered 1 stale attempt")
    assert describe({"parents_resumed": 3}) == "resumed 3 parents of ended children"
    assert describe({"something_new": 4}) == "something new: 4"  # a count without a phrase still shows
    assert describe({"redispatched": 0}) == ""


# --- Celery's own lines --------------------------------------------------------------------


def celery_lines(caplog, task_name, level=logging.INFO):
    """Log what the worker and beat log about one run of `task_name`, through the real loggers."""
    context = {"id": "0c1f", "name": task_name, "args": "()", "kwargs": "{}", "eta": None}
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("celery.worker.strategy").log(level, trace.LOG_RECEIVED, context, extra={"data": context})
        trace.info(trace.LOG_SUCCESS, {**context, "return_value": "{}", "runtime": 0.01})
        logging.getLogger("celery.beat").log(level, "Scheduler: Sending due task %s (%s)", "entry", task_name)
    return [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("task_name", sorted(PERIODIC))
def test_celery_lines_about_a_periodic_task_are_dropped(caplog, task_name):
    assert celery_lines(caplog, task_name) == []


def test_celery_lines_about_other_tasks_stay(caplog):
    lines = celery_lines(caplog, "orchestration.tasks.run_step")
    assert lines == ["Task orchestration.tasks.run_step[0c1f] received",
                     "Task orchestration.tasks.run_step[0c1f] succeeded in 0.01s: {}",
                     "Scheduler: Sending due task entry (orchestration.tasks.run_step)"]
    # A workflow's cron trigger is a beat entry too, but not housekeeping: its lines stay.
    assert len(celery_lines(caplog, FIRE_TASK)) == 3


def test_warnings_and_errors_about_periodic_tasks_stay(caplog):
    assert len(celery_lines(caplog, "orchestration.tasks.reconcile", level=logging.WARNING)) == 2
    caplog.clear()
    with caplog.at_level(logging.INFO):
        logging.getLogger("celery.app.trace").error(
            trace.LOG_FAILURE, {"id": "0c1f", "name": "orchestration.tasks.reconcile", "description": "raised",
                                "exc": "OperationalError()"})
    assert [r.getMessage() for r in caplog.records] == [
        "Task orchestration.tasks.reconcile[0c1f] raised: OperationalError()"]


def test_the_filter_reads_the_beat_schedule_or_takes_names():
    record = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, "Task %(name)s done", None, None)
    record.data = {"name": "orchestration.tasks.reconcile"}
    assert QuietPeriodicTasks().filter(record) is False
    assert QuietPeriodicTasks(tasks=["something.else"]).filter(record) is True
    plain = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, "worker ready", None, None)
    assert QuietPeriodicTasks().filter(plain) is True
