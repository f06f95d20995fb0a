"""Cron triggers on a real `celery beat` (DatabaseScheduler), and the overlap policies."""
import os
import signal

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from governance.escalations.services import step_decide
from orchestration.events import tasks as event_tasks
from orchestration.models import WorkflowInstance
from tests.support.helpers import apply_yaml, finished, step_reaches, wait_until

pytestmark = pytest.mark.integration


def runs(workflow):
    return list(WorkflowInstance.objects.filter(definition__key=workflow).order_by("created_at"))


def test_beat_fires_a_cron_trigger_from_the_database_schedule(live):
    apply_yaml("""
id: every-minute
triggers: [{type: scheduled, cron: "* * * * *", context: {report: daily}}]
steps: [{id: a, action: echo, with: {report: "{{ context.report }}", by: "{{ trigger.type }}"}}]
""")
    # As if the last run was two minutes ago: the next one is due as soon as beat reads the table.
    PeriodicTask.objects.filter(name="dac:every-minute:0").update(
        last_run_at=timezone.now() - timezone.timedelta(minutes=2))
    beat = live.spawn(["beat", "-l", "warning", "-s", "/tmp/dac-test-beat-schedule-cron"], "beat-cron")
    try:
        (instance, *_) = wait_until(lambda: runs("every-minute"), timeout=60, message="beat to fire the schedule")
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=30)
    instance = finished(instance)
    assert instance.result == {"a": {"report": "daily", "by": "scheduled"}}
    assert instance.trigger["cron"] == "* * * * *" and instance.trigger["fired_at"]
    assert instance.trigger_key == "dac:every-minute:0"


GATED = """
id: {id}
triggers: [{{type: scheduled, cron: "0 0 1 1 *", overlap: {overlap}}}]
steps: [{{id: gate, action: noop, approval: true}}]
"""


def fire(name, firing):
    """What beat sends: the task, with a message id of its own per firing."""
    event_tasks.fire_schedule.apply_async(args=(name,), task_id=firing)


@pytest.mark.parametrize("overlap", ["allow", "skip", "buffer_one", "cancel_other"])
def test_overlap_policies_while_a_scheduled_run_is_still_active(live, overlap):
    workflow = f"gated-{overlap.replace('_', '-')}"
    apply_yaml(GATED.format(id=workflow, overlap=overlap))
    name = f"dac:{workflow}:0"
    fire(name, f"{workflow}-1")
    (first,) = wait_until(lambda: runs(workflow), message="the first run")
    step_reaches(first, "gate", "waiting_approval")
    fire(name, f"{workflow}-1")  # a redelivery of the same firing starts nothing
    fire(name, f"{workflow}-2")
    fire(name, f"{workflow}-3")
    expected = {"allow": 3, "skip": 1, "buffer_one": 1, "cancel_other": 3}[overlap]
    wait_until(lambda: len(runs(workflow)) == expected and not WorkflowInstance.objects.filter(
        definition__key=workflow, status="running").exists(), message=f"{expected} run(s)")
    if overlap == "cancel_other":
        assert [r.status for r in runs(workflow)] == ["terminated", "terminated", "waiting"]
    if overlap == "buffer_one":
        step_decide(instance_id=first.id, step_id="gate", decision="approve", actor="test")
        finished(first)
        # Two firings were held back while it ran: one run starts when it ends.
        (_, buffered) = wait_until(lambda: runs(workflow) if len(runs(workflow)) == 2 else None,
                                   message="the buffered run")
        assert buffered.trigger["schedule"] == name
    assert len({r.id for r in runs(workflow)}) == len(runs(workflow))


def test_a_disabled_schedule_starts_nothing(live):
    apply_yaml(GATED.format(id="switched-off", overlap="allow"))
    PeriodicTask.objects.filter(name="dac:switched-off:0").update(enabled=False)
    fire("dac:switched-off:0", "off-1")
    fire("dac:switched-off:0", "off-2")
    from orchestration.events.models import IdempotencyRecord

    wait_until(lambda: IdempotencyRecord.objects.filter(key__startswith="schedule:off-").count() == 2,
               message="both firings handled")
    assert runs("switched-off") == []
