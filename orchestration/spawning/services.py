"""Child workflows (DESIGN §6.3): a `spawn` step starts a child instance and, by its strategy,
parks until the child ends (`wait`, `supervised`) or completes at once (`callback`,
`fire_and_forget`). With `foreach`, one child per item, `max_parallel` of them at a time, the
step's output being their results in item order.

The spawn task parks the step (or item) and starts the child in one transaction under the
parent's lock; the child is unique per (step, item, attempt, restart), so a redelivered spawn
starts nothing twice. A child's end reaches a waiting parent through `child_ended`, run after the child's last commit
(in the same worker task, else as a task); it applies the strategy once (conditional updates on
the parked step), and the reconciler runs it again for any parent still parked on an ended
child. A `callback` child announces its end itself, in its ending transaction (`lifecycle`).
"""
from django.db import transaction

from orchestration import engine, templating
from orchestration.engine.effects import Effects
from orchestration.engine.plan import plan_for_version_id
from orchestration.engine.scope import build_scope, run_outputs
from orchestration.models import StepItem, StepRun, WorkflowInstance
from orchestration.states import INSTANCE_TERMINAL
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

WAITING = S.WAITING_CHILD
AT_ONCE = ("callback", "fire_and_forget")
SUPERVISING = ("wait", "supervised")  # the strategies whose step waits for the child's end


class SpawnError(Exception):
    pass


@transaction.atomic
def child_spawn(*, step_run_id, index, attempt, inline=None):
    """The spawn task's service: park the step (or its item `index`) and start its child (whose
    first step `inline`, the calling task, may take: `child.inline_claim`)."""
    locked = engine.lock_step(step_run_id)
    if locked is None:
        return None
    parent, run, plan = locked
    spawn = plan.steps[run.step_id]["spawn"]
    effects = Effects()
    item = None if index is None else StepItem.objects.filter(step_run=run, index=index).values_list(
        "item", flat=True).first()
    try:
        context = _child_context(parent, plan, spawn, index, item)
        problem = None
    except SpawnError as exc:
        context, problem = None, {"type": "SpawnFailed", "message": str(exc)}
    inputs = {"workflow": spawn["workflow"], "context": context, "strategy": spawn["strategy"]}
    if index is None:
        if not engine.park_step(parent, plan, run, effects, attempt=attempt, status=WAITING, inputs=inputs):
            return None
        number = attempt
    else:
        number = engine.park_item(parent, plan, run, effects, index=index, attempt=attempt, inputs=inputs)
        if number is None:
            return None
    child = None
    if problem is None:
        try:
            child = _start_child(parent, run, spawn, index=index, attempt=number, restart=0, context=context,
                                 inline=inline)
        except engine.EngineError as exc:
            problem = {"type": "SpawnFailed", "message": f"could not start '{spawn['workflow']}': {exc.message}"}
    if problem is not None:
        _end(parent, plan, run, index, number, effects, error=problem, retry=False)
    elif spawn["strategy"] in AT_ONCE:
        _end(parent, plan, run, index, number, effects, output={"child": str(child.id)})
    effects.send_on_commit()
    return child


def _child_context(parent, plan, spawn, index, item):
    scope = build_scope(instance=parent, workflow=plan.spec["id"], runs=run_outputs(parent.id),
                        item=item, index=index)
    try:
        context = templating.render_value(spawn["context"], scope, plan.step_ids)
    except templating.TemplateError as exc:
        raise SpawnError(f"spawn.context: {exc}") from exc
    if not isinstance(context, dict):
        raise SpawnError(f"spawn.context must yield a mapping, got {type(context).__name__}")
    return context


def _start_child(parent, run, spawn, *, index, attempt, restart, context, inline=None):
    trigger = {"type": "spawn", "parent": str(parent.id), "step": run.step_id, "strategy": spawn["strategy"],
               "restart": restart}
    if index is not None:
        trigger["item"] = index
    origin = engine.Origin(trigger=trigger, correlation_id=parent.correlation_id, parent_id=parent.id,
                           parent_step_run_id=run.id, parent_item_index=index, spawn_attempt=attempt,
                           spawn_restart=restart)
    return engine.instance_start(workflow=spawn["workflow"], context=context, priority=parent.priority,
                                 actor=f"spawn:{parent.id}/{run.step_id}", origin=origin, inline=inline)


def _end(parent, plan, run, index, attempt, effects, *, output=None, error=None, retry=True):
    """End the parked step, or its item, with the child's result or a failure."""
    if index is not None:
        return engine.parked_item_end(parent, plan, run, index, attempt, effects, output=output, error=error,
                                      retry=retry)
    if error is None:
        return engine.parked_complete(parent, plan, run, output, effects, status=WAITING)
    return engine.parked_fail(parent, plan, run, error, effects, status=WAITING, retry=retry)


@transaction.atomic
def child_ended(*, child_id):
    """Apply a finished child to its parent step, by strategy; True if this call changed it."""
    child = WorkflowInstance.objects.select_related("definition", "parent_step_run").filter(id=child_id).first()
    if child is None or child.status not in INSTANCE_TERMINAL or child.parent_step_run is None:
        return False
    parent = engine.lock_instance(child.parent_step_run.instance_id)
    run = StepRun.objects.get(id=child.parent_step_run_id)
    plan = plan_for_version_id(parent.version_id)
    spawn = plan.steps[run.step_id]["spawn"]
    if spawn["strategy"] not in SUPERVISING or parent.failing or parent.status in INSTANCE_TERMINAL:
        return False  # nothing waits for it (any more)
    if not _is_current(run, child):
        return False  # a child of an earlier attempt, or one a restart replaced
    effects = Effects()
    index = child.parent_item_index
    if child.status == I.COMPLETED:
        changed = _end(parent, plan, run, index, child.spawn_attempt, effects, output=child.result)
    elif spawn["strategy"] == "supervised" and child.spawn_restart < spawn["max_restarts"]:
        changed = _restart(parent, plan, run, spawn, child, effects)
    else:
        changed = _end(parent, plan, run, index, child.spawn_attempt, effects, error=_child_error(child, spawn),
                       retry=spawn["strategy"] == "wait")
    effects.send_on_commit()
    return changed


def _restart(parent, plan, run, spawn, child, effects):
    """A supervised child failed: start it again; a restart that cannot start fails the step."""
    index = child.parent_item_index
    try:
        with transaction.atomic():
            _start_child(parent, run, spawn, index=index, attempt=child.spawn_attempt,
                         restart=child.spawn_restart + 1, context=child.context)
        return True
    except engine.EngineError as exc:
        error = {"type": "ChildFailed", "child": str(child.id),
                 "message": f"child {child.id} failed and could not be restarted: {exc.message}"}
        return _end(parent, plan, run, index, child.spawn_attempt, effects, error=error, retry=False)


def _is_current(run, child):
    """The step (or item) still waits for this child: same attempt, and no restart replaced it."""
    if child.parent_item_index is None:
        waiting = run.status == WAITING and run.attempts == child.spawn_attempt
    else:
        waiting = StepItem.objects.filter(step_run=run, index=child.parent_item_index, status=WAITING,
                                          attempts=child.spawn_attempt).exists()
    if not waiting or child.trigger.get("strategy") != "supervised":
        return waiting  # only supervision restarts a child within one attempt
    newer = WorkflowInstance.objects.filter(parent_step_run_id=run.id, parent_item_index=child.parent_item_index,
                                            spawn_attempt=child.spawn_attempt, spawn_restart__gt=child.spawn_restart)
    return not newer.exists()


def _child_error(child, spawn):
    reason = (child.error or {}).get("message") or child.status
    restarts = f" after {child.spawn_restart} restart(s)" if spawn["strategy"] == "supervised" else ""
    return {"type": "ChildFailed", "child": str(child.id),
            "message": f"child {child.id} ({child.definition.key}) ended {child.status}{restarts}: {reason}"}
