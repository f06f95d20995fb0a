"""Admission with real workers and concurrent starters (DESIGN §6.6): a limit is never beaten by a
race, no start is lost while it waits, and a crash does not leak a slot."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

from dacproject.celery import app
from orchestration.events.services import events_publish
from orchestration.models import WorkflowInstance
from tests.support.helpers import apply_spec, finished, start, step_reaches, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

STARTER = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dacproject.settings")
import django
django.setup()
from orchestration import engine
for _ in range(int(sys.argv[1])):
    engine.instance_start(workflow=sys.argv[2], context={}, actor="starter")
"""


def most_running_at_once(workflow):
    """The largest number of the workflow's instances whose [started_at, finished_at) overlap: an
    admitted instance's start is stamped after the end of the one whose slot it took."""
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT max(running) FROM (
              SELECT sum(delta) OVER (ORDER BY at, delta) AS running FROM (
                SELECT i.started_at AS at, 1 AS delta FROM orchestration_workflowinstance i
                  JOIN registry_workflowdefinition d ON d.id = i.definition_id WHERE d.key = %s
                UNION ALL
                SELECT i.finished_at, -1 FROM orchestration_workflowinstance i
                  JOIN registry_workflowdefinition d ON d.id = i.definition_id WHERE d.key = %s
              ) AS changes) AS timeline""", [workflow, workflow])
        return cursor.fetchone()[0]


def test_200_starts_from_several_processes_never_run_more_than_max_concurrent_and_all_complete(live):
    apply_spec({"id": "capped", "max_concurrent": 5, "steps": [
        {"id": "work", "action": "sleep", "with": {"seconds": 0.01}},
        {"id": "after", "action": "noop", "depends_on": ["work"]},
    ]})
    sampled, done = [0], threading.Event()

    def sample():
        from django.db import connection as own

        try:
            while not done.wait(0.002):  # paced, so that the sampler leaves the workers their CPU
                sampled[0] = max(sampled[0], WorkflowInstance.objects.filter(
                    definition__key="capped", status__in=["running", "waiting"]).count())
        finally:
            own.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        starters = [subprocess.Popen([sys.executable, "-c", STARTER, "50", "capped"], cwd=ROOT, env=live.env)
                    for _ in range(4)]
        assert [p.wait(timeout=120) for p in starters] == [0, 0, 0, 0]
        wait_until(lambda: WorkflowInstance.objects.filter(definition__key="capped", status="completed").count()
                   == 200, timeout=120, interval=0.2, message="all 200 instances to complete")
    finally:
        done.set()
        sampler.join()
    assert WorkflowInstance.objects.filter(definition__key="capped").count() == 200
    assert 1 <= sampled[0] <= 5
    assert most_running_at_once("capped") == 5  # exact, from the timestamps: full, never over


def _active_task_pid(hostname, step_run_id):
    for task in (app.control.inspect(destination=[hostname], timeout=1).active() or {}).get(hostname, []):
        if task["name"] == "orchestration.tasks.run_step" and task["args"][0] == step_run_id:
            return task["worker_pid"]
    return None


def test_a_slot_held_through_a_killed_worker_process_is_handed_on_when_its_instance_ends(live):
    apply_spec({"id": "single", "max_concurrent": 1, "steps": [
        {"id": "work", "action": "sleep", "with": {"seconds": 1}}]})
    first, waiting = start("single"), start("single")
    assert WorkflowInstance.objects.get(id=waiting.id).status == "queued"
    run = step_reaches(first, "work", "running")
    pid = wait_until(lambda: _active_task_pid(live.default, run.id), message="the step's task to be active")
    os.kill(pid, signal.SIGKILL)
    assert finished(first, timeout=60).status == "completed"
    assert finished(waiting, timeout=30).status == "completed"
    assert most_running_at_once("single") == 1


def test_spawned_children_and_event_starts_queue_under_the_child_workflows_limit(live):
    apply_spec({"id": "one-at-a-time", "max_concurrent": 1,
                "triggers": [{"type": "manual"}, {"type": "event", "event": "nudge"}],
                "steps": [{"id": "work", "action": "sleep", "with": {"seconds": 0.2}}]})
    apply_spec({"id": "fan-out", "steps": [
        {"id": "children", "foreach": "{{ [1, 2, 3] }}", "spawn": {"workflow": "one-at-a-time"}}]})
    parent = start("fan-out")
    events_publish(events=[{"event_type": "nudge", "payload": {}}], actor="test")
    wait_until(lambda: WorkflowInstance.objects.filter(definition__key="one-at-a-time", status="queued").exists(),
               message="a child or an event start to queue")
    assert finished(parent, timeout=60).status == "completed"
    wait_until(lambda: WorkflowInstance.objects.filter(definition__key="one-at-a-time", status="completed").count()
               == 4, timeout=30, message="the three children and the event's instance to complete")
    assert most_running_at_once("one-at-a-time") == 1
