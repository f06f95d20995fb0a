"""Cron triggers (DESIGN §6.2): one django-celery-beat `PeriodicTask` per scheduled trigger,
named `dac:<workflow>:<n>` (the n-th scheduled trigger, from 0), fired by beat's
`DatabaseScheduler`; and the overlap policies applied when one fires.

Operators may disable a schedule in Django admin; `dac apply` keeps that choice when it updates
the row, and a disabled schedule that fires anyway (a message sent before) starts nothing.
"""
import json

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from orchestration import engine
from orchestration.engine.cascade import lock_families
from orchestration.models import WorkflowInstance
from orchestration.states import INSTANCE_ACTIVE

from .models import IdempotencyRecord, ScheduleState

FIRE_TASK = "orchestration.events.tasks.fire_schedule"
PREFIX = "dac:"


def schedule_name(workflow, n):
    return f"{PREFIX}{workflow}:{n}"


def scheduled_triggers(spec):
    return [t for t in spec.get("triggers") or [] if t["type"] == "scheduled"]


def schedules_sync(definition, spec):
    """Create, change or remove the workflow's PeriodicTasks to match its latest version."""
    desired = {schedule_name(definition.key, n): t for n, t in enumerate(scheduled_triggers(spec))}
    existing = {p.name: p for p in PeriodicTask.objects.filter(name__startswith=f"{PREFIX}{definition.key}:")}
    for name, task in existing.items():
        if name not in desired:
            task.delete()  # through the model, so beat's change tracking sees it
            ScheduleState.objects.filter(name=name).delete()
    for name, trigger in desired.items():
        minute, hour, day_of_month, month_of_year, day_of_week = trigger["cron"].split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone=trigger["timezone"])
        fields = {"task": FIRE_TASK, "crontab": crontab, "kwargs": json.dumps({"schedule": name}),
                  "description": f"{definition.key}: cron '{trigger['cron']}' ({trigger['timezone']}), "
                                 f"overlap {trigger['overlap']}"}
        task = existing.get(name)
        if task is None:
            PeriodicTask.objects.create(name=name, **fields)
        elif any(getattr(task, k) != v for k, v in fields.items()):
            for k, v in fields.items():
                setattr(task, k, v)
            task.save()


def _trigger_of(name):
    """(workflow key, its scheduled trigger) for a schedule name, or (key, None) if it is gone."""
    from registry.selectors import definition_get

    workflow, _, n = name[len(PREFIX):].rpartition(":")
    definition = definition_get(workflow)
    triggers = scheduled_triggers(definition.latest_version.spec) if definition and definition.latest_version else []
    index = int(n) if n.isdigit() else -1
    return workflow, (triggers[index] if 0 <= index < len(triggers) else None)


def _active_runs(name):
    return WorkflowInstance.objects.filter(trigger_key=name, status__in=INSTANCE_ACTIVE)


def _start(name, workflow, trigger, fired_at):
    origin = engine.Origin(
        trigger={"type": "scheduled", "cron": trigger["cron"], "timezone": trigger["timezone"],
                 "fired_at": fired_at.isoformat(), "schedule": name},
        trigger_key=name)
    return engine.instance_start(workflow=workflow, context=dict(trigger.get("context") or {}),
                                 actor=f"schedule:{name}", origin=origin)


def schedule_fire(*, name, firing_id):
    """Beat fired schedule `name`; `firing_id` (the message's task id) makes a redelivery a no-op.

    Returns the started instance, or None (a repeat, a disabled or removed schedule, or an
    overlap policy that held the run back)."""
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(key=f"schedule:{firing_id}", response={"schedule": name})
            return _fire(name)
    except IntegrityError:
        return None  # this firing was handled already


def _fire(name):
    if not PeriodicTask.objects.filter(name=name, enabled=True).exists():
        return None
    workflow, trigger = _trigger_of(name)
    if trigger is None:
        return None
    ScheduleState.objects.get_or_create(name=name)
    state = ScheduleState.objects.select_for_update().get(name=name)  # one firing of a schedule at a time
    now = timezone.now()
    state.last_fired_at = now
    active = list(_active_runs(name).values_list("id", flat=True))
    policy = trigger.get("overlap", "allow")
    if active and policy == "skip":
        state.save()
        return None
    if active and policy == "buffer_one":
        state.buffered = True
        state.save()
        return None
    if active and policy == "cancel_other":
        lock_families(active)  # all of them (and their children) before the first audited stop
        for instance_id in active:
            try:
                engine.instance_terminate(instance_id=instance_id, actor=f"schedule:{name}",
                                          reason=f"replaced by a newer run of schedule {name} (overlap: cancel_other)")
            except engine.Conflict:
                pass  # it ended on its own meanwhile
    state.save()
    return _start(name, workflow, trigger, now)


@transaction.atomic
def schedule_release(*, name):
    """A run of `name` ended: start the one buffered meanwhile (overlap: buffer_one), if any."""
    state = ScheduleState.objects.select_for_update().filter(name=name, buffered=True).first()
    if state is None or _active_runs(name).exists():
        return None
    state.buffered = False
    state.save()
    workflow, trigger = _trigger_of(name)
    if trigger is None or not PeriodicTask.objects.filter(name=name, enabled=True).exists():
        return None
    return _start(name, workflow, trigger, timezone.now())


def buffered_schedules():
    """Names holding a buffered run with nothing active: the reconciler releases them."""
    names = ScheduleState.objects.filter(buffered=True).values_list("name", flat=True)
    return [n for n in names if not _active_runs(n).exists()]
