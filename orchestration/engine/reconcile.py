"""The reconciler: re-dispatch, from database state, whatever Redis lost or a dead worker held.

It runs periodically (beat) and may run concurrently with itself: every re-dispatch first
wins a conditional update, and a duplicate message claims nothing. Worst-case recovery
after Redis loses its queues is DAC_RECONCILE_INTERVAL_SECONDS + DAC_RECONCILE_READY_AFTER_SECONDS.
A step's stale heartbeat (DAC_HEARTBEAT_STALE_SECONDS) is the fallback for a hung process in a
live worker: a dead worker's steps are recovered sooner through `steps_recover_lost`, by
orchestration.workers, with the same recoveries.
"""
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from metrics import tracing
from orchestration.models import AttemptStatus, StepAttempt, StepItem, StepRun, WorkflowInstance
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

from . import lifecycle
from .advance import dispatch_for, pending_compensations
from .effects import Effects
from .plan import plan_for_version_id
from .steps import items_join

ACTIVE = (I.RUNNING, I.WAITING)


@dataclass
class ReconcileReport:
    redispatched: int = 0
    recovered_stale: int = 0
    joined: int = 0
    compensations: int = 0
    settled: int = 0

    def as_dict(self):
        return self.__dict__.copy()


def reconcile(*, limit=500):
    """One pass; returns what it did."""
    now = timezone.now()
    ready_cutoff = now - timezone.timedelta(seconds=settings.DAC_RECONCILE_READY_AFTER_SECONDS)
    stale_cutoff = now - timezone.timedelta(seconds=settings.DAC_HEARTBEAT_STALE_SECONDS)
    report = ReconcileReport()
    report.recovered_stale = _recover_stale_running(Q(heartbeat_at__lt=stale_cutoff), limit)
    report.redispatched = _redispatch_ready(ready_cutoff, limit)
    report.joined = _rejoin_foreach(ready_cutoff, stale_cutoff, limit)
    report.compensations = _resume_compensation(stale_cutoff, limit)
    report.settled = _settle_failing(Q(heartbeat_at__lt=stale_cutoff), limit)
    return report


# What steps_recover_lost counts, in the order it reports them.
LOST_RECOVERIES = ("steps_recovered", "foreach_rerun", "steps_settled")


def steps_recover_lost(*, steps, items, limit=500):
    """Recover now what workers known to be gone held (orchestration.workers tells which): `steps`
    (a Q on StepRun) and `items` (a Q on StepItem) select their running plain steps and foreach
    items. The recoveries of a stale heartbeat, so the same conditional updates make a concurrent
    or repeated pass harmless and the same free recoveries are counted."""
    return {"steps_recovered": _recover_stale_running(steps, limit), "foreach_rerun": _rerun_lost_items(items, limit),
            "steps_settled": _settle_failing(steps, limit)}


def _active_instance():
    return Q(instance__status__in=ACTIVE, instance__failing=False)


def _recover_stale_running(lost, limit):
    """A plain step whose worker is gone (`lost`, a Q on StepRun: a stale heartbeat, or a worker
    known to be dead) goes back to ready. The first lost tries are
    free (a crash is not the step's fault); after DAC_FREE_RECOVERIES they count as failed
    attempts, so an action that always kills its worker (or outlives its hard time limit)
    ends by its retry policy instead of looping."""
    stale = StepRun.objects.filter(lost, _active_instance(), status=S.RUNNING, item_count__isnull=True,
                                   ).values_list("id", "attempts")[:limit]
    recovered = 0
    for step_run_id, attempts in stale:
        with transaction.atomic():
            run = StepRun.objects.select_for_update().filter(
                lost, id=step_run_id, status=S.RUNNING, attempts=attempts).first()
            if run is None:
                continue
            _attempt_lost(step_run_id, None, attempts)
            _recover(run)
        recovered += 1
    return recovered


def _attempt_lost(step_run_id, item_index, number):
    """The record of an attempt that was running when its worker went: failed, WorkerLost."""
    if StepAttempt.objects.filter(step_run_id=step_run_id, item_index=item_index, number=number,
                                  status=AttemptStatus.RUNNING).update(
            status=AttemptStatus.FAILED, finished_at=timezone.now(), error_type="WorkerLost",
            error_message="the worker stopped heart-beating"):
        tracing.attempt_ended(step_run_id, item_index, number)


def _recover(run):
    from .advance import advance
    from .steps import lock_instance

    free = run.recoveries < settings.DAC_FREE_RECOVERIES
    instance = lock_instance(run.instance_id)
    plan = plan_for_version_id(instance.version_id)
    lost = {"type": "WorkerLost", "message": "the worker stopped heart-beating"}
    if not free and run.attempts - run.attempt_base >= plan.steps[run.step_id]["retry"]["max_attempts"]:
        StepRun.objects.filter(id=run.id).update(status=S.FAILED, error=lost, finished_at=timezone.now())
        lifecycle.step_ended(instance, plan.spec["id"], run.step_id, S.FAILED)
        effects = Effects()
        advance(instance, plan, effects)
        effects.send_on_commit()
        return
    StepRun.objects.filter(id=run.id).update(
        status=S.READY, ready_at=timezone.now(), task_id="", error=lost, recoveries=F("recoveries") + 1,
        attempt_base=F("attempt_base") + (1 if free else 0))
    Effects(dispatches=[dispatch_for(instance, plan, StepRun.objects.get(id=run.id))]).send_on_commit()


def _redispatch_ready(ready_cutoff, limit):
    """Ready steps whose message was lost (or never sent) go out again, at most once per period."""
    candidates = StepRun.objects.filter(_active_instance(), status=S.READY, ready_at__lt=ready_cutoff,
                                        ).values_list("id", "ready_at")[:limit]
    sent = 0
    for step_run_id, ready_at in candidates:
        with transaction.atomic():
            if not StepRun.objects.filter(id=step_run_id, status=S.READY, ready_at=ready_at).update(
                    ready_at=timezone.now()):
                continue
            _dispatch_run(StepRun.objects.select_related("instance__version").get(id=step_run_id))
        sent += 1
    return sent


def _rejoin_foreach(ready_cutoff, stale_cutoff, limit):
    """A foreach step whose chord was lost: join it if every item ended, else re-run the
    unfinished items in a new chord once no item has shown any sign of life for a while."""
    runs = StepRun.objects.filter(_active_instance(), status=S.RUNNING, item_count__isnull=False,
                                  ready_at__lt=ready_cutoff).values_list("id", "ready_at")[:limit]
    count = 0
    for step_run_id, ready_at in runs:
        items = StepItem.objects.filter(step_run_id=step_run_id)
        unfinished = items.exclude(status__in=[S.COMPLETED, S.FAILED])
        if unfinished.exists() and (ready_at >= stale_cutoff or items.filter(heartbeat_at__gte=stale_cutoff).exists()):
            continue  # items are queued in lanes or running: not lost
        count += _rerun_items(step_run_id, ready_at, Q(heartbeat_at__lt=stale_cutoff))
    return count


def _rerun_lost_items(lost, limit):
    """A foreach step with a running item whose worker is gone (`lost`, a Q on StepItem) is re-run
    as a lost chord is, now: items still running elsewhere are sent again but claim nothing."""
    lost_item = StepItem.objects.filter(lost, step_run_id=OuterRef("id"), status=S.RUNNING)
    runs = StepRun.objects.filter(Exists(lost_item), _active_instance(), status=S.RUNNING, item_count__isnull=False,
                                  ).values_list("id", "ready_at")[:limit]
    return sum(_rerun_items(step_run_id, ready_at, lost) for step_run_id, ready_at in runs)


def _rerun_items(step_run_id, ready_at, lost):
    """Send a foreach step's unfinished items again in a new chord, its running items that match
    `lost` back to ready (a lost try is free), or join it when every item ended. False when a
    concurrent pass moved its `ready_at` first."""
    items = StepItem.objects.filter(step_run_id=step_run_id)
    with transaction.atomic():
        if not StepRun.objects.filter(id=step_run_id, status=S.RUNNING, ready_at=ready_at).update(
                ready_at=timezone.now()):
            return False
        lost_items = items.filter(lost, status=S.RUNNING)
        for index, attempts in lost_items.values_list("index", "attempts"):
            _attempt_lost(step_run_id, index, attempts)
        lost_items.update(status=S.READY, attempt_base=F("attempts"), task_id="")
        if items.exclude(status__in=[S.COMPLETED, S.FAILED]).exists():
            _dispatch_run(StepRun.objects.select_related("instance__version").get(id=step_run_id))
        else:
            transaction.on_commit(lambda: items_join(step_run_id=step_run_id))
    return True


def _resume_compensation(cutoff, limit):
    """A saga whose compensation chain was lost continues with the steps not yet compensated."""
    stuck = WorkflowInstance.objects.filter(failing=True, compensation_started=True, status__in=ACTIVE,
                                            updated_at__lt=cutoff).select_related("version")[:limit]
    count = 0
    for instance in stuck:
        with transaction.atomic():
            if not WorkflowInstance.objects.filter(id=instance.id, updated_at=instance.updated_at).update(
                    updated_at=timezone.now()):
                continue
            plan = plan_for_version_id(instance.version_id)
            effects = Effects(compensation=(instance.id, pending_compensations(instance, plan)))
            effects.send_on_commit()
        count += 1
    return count


def _settle_failing(lost, limit):
    """A failing instance waits for its running steps; one whose worker is gone (a refused
    redelivery, a hard time limit) is cancelled so the saga can go on."""
    from .advance import advance
    from .steps import lock_instance

    stuck = StepRun.objects.filter(lost, instance__failing=True, instance__compensation_started=False,
                                   instance__status__in=ACTIVE, status=S.RUNNING,
                                   ).values_list("id", "instance_id")[:limit]
    settled = 0
    for step_run_id, instance_id in stuck:
        with transaction.atomic():
            instance = lock_instance(instance_id)
            if not StepRun.objects.filter(lost, id=step_run_id, status=S.RUNNING).update(
                    status=S.CANCELLED, finished_at=timezone.now(),
                    error={"type": "WorkerLost", "message": "cancelled: its worker stopped while the instance failed"}):
                continue
            effects = Effects()
            advance(instance, plan_for_version_id(instance.version_id), effects)
            effects.send_on_commit()
        settled += 1
    return settled


def _dispatch_run(run):
    instance = run.instance
    Effects(dispatches=[dispatch_for(instance, plan_for_version_id(instance.version_id), run)]).send_on_commit()
