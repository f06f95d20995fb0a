"""Stopping an instance, and what hangs off its parked steps: their open waits are cancelled and
the children of their `wait` and `supervised` spawns are terminated with them (DESIGN §6.3).

Locks are always taken parent before child (a child's end reaches its parent through a task,
never while holding its own lock), so two stops of one family cannot deadlock.
"""
from django.utils import timezone

from governance.audit import audit_record
from orchestration.models import EventWait, StepItem, StepRun, WorkflowInstance
from orchestration.states import INSTANCE_TERMINAL, STEP_TERMINAL, STEP_WAITING
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

from .advance import set_instance_status
from .effects import Effects
from .plan import plan_for_version_id

SUPERVISING_STRATEGIES = ("wait", "supervised")


def stop_instance(instance, status, *, family_locked=False):
    """Cancel everything unfinished, revoke what runs and stop waited-for children; used by
    terminate and time-out. The caller holds the instance lock and has set `instance.error`."""
    effects = Effects()
    active = StepRun.objects.filter(instance=instance).exclude(status__in=STEP_TERMINAL)
    parked = [r.id for r in active.filter(status__in=STEP_WAITING).only("id")]
    release_parked(instance, plan_for_version_id(instance.version_id), parked,
                   reason=f"its parent instance {instance.id} was {status.replace('_', ' ')}",
                   family_locked=family_locked)
    effects.revoke_task_ids = [t for t in active.values_list("task_id", flat=True) if t]
    running_items = StepItem.objects.filter(step_run__instance=instance, status=S.RUNNING)
    effects.revoke_task_ids += [t for t in running_items.values_list("task_id", flat=True) if t]
    now = timezone.now()
    active.update(status=S.CANCELLED, finished_at=now)
    StepItem.objects.filter(step_run__instance=instance).exclude(status__in=STEP_TERMINAL).update(status=S.CANCELLED)
    set_instance_status(instance, status)
    instance.save()
    effects.send_on_commit()


def release_parked(instance, plan, step_run_ids, *, reason, family_locked=False):
    """Cancel the open waits of these steps and terminate their supervised children.

    Before the first child is stopped, every active descendant is locked, parents before
    children, so a cascade takes its locks in the same order as any other transaction and
    cannot deadlock with one."""
    if not step_run_ids:
        return
    EventWait.objects.filter(step_run_id__in=step_run_ids, status="waiting").update(
        status="cancelled", resolved_at=timezone.now())
    children = list(WorkflowInstance.objects.filter(parent_step_run_id__in=step_run_ids)
                    .exclude(status__in=INSTANCE_TERMINAL).values_list("id", "parent_step_run__step_id"))
    victims = [c for c, step_id in children if plan.steps[step_id]["spawn"]["strategy"] in SUPERVISING_STRATEGIES]
    if victims and not family_locked:
        lock_families(victims)
    for child_id in victims:
        _terminate_child(child_id, reason)


def lock_families(instance_ids):
    """Lock these instances and all their active descendants: level by level, each by id."""
    level = sorted(instance_ids)
    while level:
        locked = WorkflowInstance.objects.select_for_update().filter(id__in=level).order_by("id")
        list(locked.values_list("id", flat=True))
        level = list(WorkflowInstance.objects.filter(parent_id__in=level).exclude(status__in=INSTANCE_TERMINAL)
                     .order_by("id").values_list("id", flat=True))


def _terminate_child(child_id, reason):
    from .steps import lock_instance

    child = lock_instance(child_id)
    if child.status in INSTANCE_TERMINAL:
        return
    child.error = {"type": "Terminated", "message": f"terminated: {reason}"}
    stop_instance(child, I.TERMINATED, family_locked=True)
    audit_record(actor="system", verb="instance.terminate", target_type="instance", target_id=child.id,
                 details={"reason": reason, "cascade": True})
