"""`dac apply` keeps one beat PeriodicTask per scheduled trigger (DESIGN §6.2), in the apply's
transaction, writing only differences; operators disable schedules in admin."""
import json

import pytest
from django_celery_beat.models import PeriodicTask

from orchestration.events.models import Trigger
from tests.support.helpers import apply_yaml

FLOW = """
id: nightly
triggers:
  - {type: manual}
  - {type: scheduled, cron: "30 2 * * 1-5", timezone: Europe/Paris, context: {mode: full}, overlap: skip}
  - {type: event, event: data.loaded, filters: {source: "s3://*"}}
  - {type: scheduled, cron: "0 12 * * *"}
steps: [{id: a, action: noop}]
"""


def tasks():
    return {t.name: t for t in PeriodicTask.objects.filter(name__startswith="dac:")}


def test_apply_creates_one_periodic_task_per_scheduled_trigger(db):
    apply_yaml(FLOW)
    assert set(tasks()) == {"dac:nightly:0", "dac:nightly:1"}
    first = tasks()["dac:nightly:0"]
    assert first.task == "orchestration.events.tasks.fire_schedule" and first.enabled
    assert json.loads(first.kwargs) == {"schedule": "dac:nightly:0"}
    cron = first.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == \
        ("30", "2", "*", "*", "1-5")
    assert str(cron.timezone) == "Europe/Paris"
    assert "overlap skip" in first.description
    assert list(Trigger.objects.values_list("key", "kind", "event_type")) == [
        ("nightly:triggers[2]", "event", "data.loaded")]


def test_reapplying_keeps_an_operators_disable_and_changes_follow_new_versions(db):
    apply_yaml(FLOW)
    PeriodicTask.objects.filter(name="dac:nightly:0").update(enabled=False)
    stamp = tasks()["dac:nightly:0"].date_changed
    apply_yaml(FLOW)  # unchanged: nothing is written
    assert tasks()["dac:nightly:0"].date_changed == stamp and not tasks()["dac:nightly:0"].enabled
    apply_yaml(FLOW.replace('"30 2 * * 1-5"', '"45 3 * * *"'))
    changed = tasks()["dac:nightly:0"]
    assert (changed.crontab.minute, changed.crontab.hour) == ("45", "3") and not changed.enabled
    apply_yaml(FLOW.replace('  - {type: scheduled, cron: "0 12 * * *"}\n', ""))
    assert set(tasks()) == {"dac:nightly:0"}
    apply_yaml(FLOW.replace("triggers:", "triggers: []\nx-old-triggers:"))
    assert tasks() == {} and not Trigger.objects.exists()


def test_a_broken_apply_changes_no_schedule(db):
    from registry.spec import SpecInvalid

    apply_yaml(FLOW)
    with pytest.raises(SpecInvalid):
        apply_yaml(FLOW.replace('"0 12 * * *"', '"0 12 * *"') + "  - {id: b, action: nope}\n")
    assert json.loads(tasks()["dac:nightly:1"].kwargs) == {"schedule": "dac:nightly:1"}
    assert tasks()["dac:nightly:1"].crontab.hour == "12"


def test_schedules_are_listed_and_disabled_in_admin(admin_client, db):
    apply_yaml(FLOW)
    page = admin_client.get("/admin/django_celery_beat/periodictask/")
    assert page.status_code == 200 and b"dac:nightly:0" in page.content
    task = tasks()["dac:nightly:1"]
    admin_client.post("/admin/django_celery_beat/periodictask/",
                      {"action": "disable_tasks", "_selected_action": [task.pk]})
    assert not PeriodicTask.objects.get(pk=task.pk).enabled
