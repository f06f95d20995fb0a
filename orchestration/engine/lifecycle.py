"""What a status change tells the rest of the system (DESIGN §6.1): lifecycle events on the bus,
and, when an instance ends, its waiting parent step, its schedule's buffered run and the
instances queued for the concurrency slots it held (DESIGN §6.6).

Events are stored in the transaction of the change; the notices go out after it commits, and
the reconciler covers a notice lost between the two.
"""
import logging

from django.db import transaction

from metrics import tracing
from orchestration.events.publish import Draft, publish
from orchestration.states import INSTANCE_TERMINAL
from orchestration.states import InstanceStatus as I

from .followups import follow_up
from .plan import plan_for_version_id

logger = logging.getLogger(__name__)

_INSTANCE_EVENTS = {
    I.PAUSED: "workflow.paused",
    I.COMPLETED: "workflow.completed",
    I.FAILED: "workflow.failed",
    I.TERMINATED: "workflow.terminated",
    I.TIMED_OUT: "workflow.timed_out",
}


def workflow_of(instance):
    return plan_for_version_id(instance.version_id).spec["id"]


def _event_name(old, new):
    if new == I.RUNNING and old == I.PAUSED:
        return "workflow.resumed"
    if new == I.RUNNING and old in (I.PENDING, I.QUEUED):
        return "workflow.started"
    if new != old:
        return _INSTANCE_EVENTS.get(new)
    return None


def instance_event(instance, name):
    """`workflow.*`: {instance, workflow, status, result|error}, with the instance's correlation id."""
    workflow = workflow_of(instance)
    payload = {"instance": str(instance.id), "workflow": workflow, "status": instance.status}
    if instance.status == I.COMPLETED:
        payload["result"] = instance.result
    elif instance.error is not None:
        payload["error"] = instance.error
    return Draft(name, payload, source_workflow=workflow, source_instance_id=instance.id,
                 priority=instance.priority, correlation_id=instance.correlation_id)


def step_event(instance, workflow, step_id, status):
    """`step.completed|failed`: {instance, workflow, step, status}."""
    return Draft(f"step.{status}", _step_payload(instance.id, workflow, step_id, status),
                 source_workflow=workflow, source_instance_id=instance.id, priority=instance.priority,
                 correlation_id=instance.correlation_id)


def step_completed_event(instance_id, workflow, step_id, now):
    """`step.completed` for the statement that completes the step (`transitions.step_complete`),
    which stores it with its instance's priority and correlation id, read from the row it locks."""
    return Draft("step.completed", _step_payload(instance_id, workflow, step_id, "completed"),
                 source_workflow=workflow, source_instance_id=instance_id).to_event(now)


def _step_payload(instance_id, workflow, step_id, status):
    return {"instance": str(instance_id), "workflow": workflow, "step": step_id, "status": str(status)}


def child_end_event(child):
    """`workflow.child.completed|failed` of a `callback` child, correlated to its parent instance."""
    spawned = child.trigger or {}
    ok = child.status == I.COMPLETED
    workflow = workflow_of(child)
    payload = {"instance": str(child.id), "workflow": workflow, "status": child.status,
               "parent": spawned.get("parent"), "step": spawned.get("step"), "item": spawned.get("item"),
               "result" if ok else "error": child.result if ok else child.error}
    return Draft(f"workflow.child.{'completed' if ok else 'failed'}", payload, source_workflow=workflow,
                 source_instance_id=child.id, priority=child.priority, correlation_id=spawned.get("parent") or "")


def step_ended(instance, workflow, step_id, status):
    """Publish `step.completed|failed` in the current transaction."""
    publish([step_event(instance, workflow, step_id, status)])


def instance_changed(instance, old, new):
    """Called by the engine for every instance transition, inside its transaction."""
    name = _event_name(old, new)
    if name:
        publish([instance_event(instance, name)])
    if new in INSTANCE_TERMINAL and old not in INSTANCE_TERMINAL:
        _after_end(instance)


def _after_end(instance):
    from orchestration.events import tasks as event_tasks
    from orchestration.spawning import services as spawning
    from orchestration.spawning import tasks as spawn_tasks

    tracing.instance_ended(instance.id)
    if instance.status != I.COMPLETED:  # a completed instance has no step left parked for approval
        from governance.escalations.deadlines import escalations_close

        escalations_close(instance, reason=f"the instance {instance.status.replace('_', ' ')}")
    if instance.holds_slots:
        from .admission import slots_release

        slots_release(instance)
    instance_id = str(instance.id)
    strategy = (instance.trigger or {}).get("strategy") if instance.parent_step_run_id else None
    if strategy == "callback":
        publish([child_end_event(instance)])  # in this transaction: announced exactly once per end
    elif strategy in ("wait", "supervised"):
        transaction.on_commit(lambda: follow_up(lambda: spawning.child_ended(child_id=instance_id),
                                                lambda: _send(spawn_tasks.child_ended, instance_id)))
    if instance.trigger_key and (instance.trigger or {}).get("type") == "scheduled":
        transaction.on_commit(lambda: _send(event_tasks.schedule_release, instance.trigger_key))


def _send(task, argument):
    try:
        task.delay(argument)
    except Exception:  # noqa: BLE001 - committed already; the reconciler sends it again
        logger.exception("could not send %s(%s); the reconciler will", task.name, argument)
