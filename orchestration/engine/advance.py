"""Moving an instance forward after any change. Always called under the instance row lock.

Pending steps are resolved in topological order, so a skip propagates in one pass and a
step starts as soon as its own dependencies are done (no layer barriers).
"""
import json

from django.db import connection
from django.db.models import F, JSONField
from django.db.models.base import ModelState
from django.utils import timezone

from orchestration import canvas, templating
from orchestration.canvas import StepDispatch
from orchestration.models import StepItem, StepRun
from orchestration.resources.budgets import budget_enforce
from orchestration.resources.quotas import quota_held, quota_hold, quota_holds
from orchestration.states import (
    INSTANCE_TERMINAL,
    STEP_TERMINAL,
    STEP_WAITING,
    check_instance_transition,
    step_counts_as_done,
)
from orchestration.states import (
    InstanceStatus as I,
)
from orchestration.states import (
    StepStatus as S,
)

from . import lifecycle
from .approvals import Governance
from .scope import build_scope
from .transitions import engine_state, prepared_cursor, save_state, steps_mark_ready

# What advancing reads of each step run (its timestamps are written, never read, here).
RUN_STATE_FIELDS = ("id", "instance_id", "step_id", "status", "attempts", "attempt_base", "output", "error",
                    "item_count", "completed_seq", "decision")
_RUNS_SQL = f"SELECT {', '.join(RUN_STATE_FIELDS)} FROM {StepRun._meta.db_table} WHERE instance_id = %s"
_JSON_FIELDS = tuple(name for name in RUN_STATE_FIELDS if isinstance(StepRun._meta.get_field(name), JSONField))


def runs_of(instance_id):
    """{step_id: StepRun} of an instance, with only RUN_STATE_FIELDS loaded (the others deferred, as
    `.only()` leaves them), read by one plain statement: this runs on every transition, and the
    ORM's compiler and model constructor cost more than the read for a long workflow."""
    with prepared_cursor() as cursor:
        cursor.execute(_RUNS_SQL, [instance_id])
        rows = cursor.fetchall()
    runs = {}
    for row in rows:
        run = StepRun.__new__(StepRun)
        values = run.__dict__
        values.update(zip(RUN_STATE_FIELDS, row, strict=True))
        for name in _JSON_FIELDS:
            if values[name] is not None:
                values[name] = json.loads(values[name])
        state = values["_state"] = ModelState()
        state.adding, state.db = False, connection.alias
        runs[run.step_id] = run
    return runs


def advance(instance, plan, effects, *, inline_queue=None, runs=None, fresh=False, preready=(), as_stored=None):
    """Resolve what can move, dispatch what became ready, finish the instance when done.

    With `inline_queue`, one newly ready plain step on that queue is held for the calling task
    (`effects.inline`) instead of being written `ready` and dispatched: the task claims it from
    `pending` in this transaction (`steps._continue_inline`), saving a write and a broker trip.
    `runs` ({step_id: StepRun}) saves reading them when the caller has them as stored, and a
    `fresh` instance (just created, as stored) is written only if advancing changed it;
    `preready` runs were created `ready` (`plainly_ready`) and are dispatched with the rest.
    `as_stored` (`engine_state` of the instance as its row now holds it) likewise saves writing
    an instance whose columns advancing left as they are.
    Returns the step runs as it left them, or None for a finished instance.
    """
    if instance.status in (I.COMPLETED, I.FAILED, I.TERMINATED, I.TIMED_OUT):
        return None
    if fresh:
        as_stored = engine_state(instance)
    if runs is None:
        runs = runs_of(instance.id)
    governance = Governance.of(instance)
    ready = [*preready, *([] if instance.failing else _resolve_pending(instance, plan, runs, governance))]
    if preready and quota_hold(instance, plan):
        ready = []  # first steps created ready wait, as they are, for the quota's release
    if not instance.failing:
        failed = _first_blocking_failure(plan, runs)
        if failed is not None:
            _start_failing(instance, failed)
    if instance.failing:
        _leave_quota_hold(instance)
        _advance_failing(instance, runs, plan, effects)
        return runs
    held = _inline_candidate(plan, ready, inline_queue) if instance.status != I.PAUSED else None
    steps_mark_ready([run for run in ready if run is not held and run not in preready])
    if instance.status != I.PAUSED:
        effects.dispatches.extend(dispatch_for(instance, plan, run) for run in ready if run is not held)
        effects.inline = dispatch_for(instance, plan, held) if held is not None else None
    if all(r.status in STEP_TERMINAL for r in runs.values()) and not governance.holds_instance(plan):
        _leave_quota_hold(instance)
        _complete(instance, plan, runs, effects)
    elif instance.status != I.PAUSED and quota_holds(instance):
        set_instance_status(instance, I.QUEUED)
    elif instance.status != I.PAUSED:
        _leave_quota_hold(instance)
        busy = any(r.status in (S.READY, S.RUNNING) for r in runs.values())
        set_instance_status(instance, I.RUNNING if busy else I.WAITING)
    if as_stored is None or engine_state(instance) != as_stored:
        save_state(instance)
    return runs


def step_kind(step):
    return canvas.SPAWN if step["spawn"] else canvas.WAIT if step["wait_for"] else canvas.RUN


def dispatch_for(instance, plan, run, *, countdown=None):
    step = plan.steps[run.step_id]
    kind = step_kind(step)
    items = None
    if step["foreach"] is not None:
        items = _spawn_item_attempts(run, step) if kind == canvas.SPAWN else _item_attempts(run)
    return StepDispatch(
        step_run_id=run.id,
        attempt=run.attempts + 1,
        queue=step["queue"],
        timeout_seconds=step["timeout_seconds"],
        items=items,
        max_parallel=step["max_parallel"],
        priority=instance.priority,
        kind=kind,
        countdown=countdown,
        rate_limit=canvas.rate_limit_of(step) if kind == canvas.RUN else None,
    )


def _item_attempts(run):
    """(index, next attempt within the round) of every item not yet finished."""
    items = StepItem.objects.filter(step_run=run).exclude(status__in=[S.COMPLETED, S.FAILED]).order_by("index")
    return tuple((i.index, i.attempts - i.attempt_base + 1) for i in items.only("index", "attempts", "attempt_base"))


def _spawn_item_attempts(run, step):
    """The ready items whose children may start now: for `wait` and `supervised`, only as many as
    `max_parallel` leaves beside the children already running."""
    items = StepItem.objects.filter(step_run=run).only("index", "status", "attempts", "attempt_base").order_by("index")
    ready = [(i.index, i.attempts - i.attempt_base + 1) for i in items if i.status == S.READY]
    cap = step["max_parallel"]
    if cap and step["spawn"]["strategy"] in ("wait", "supervised"):
        running = sum(1 for i in items if i.status == S.WAITING_CHILD)
        ready = ready[:max(0, cap - running)]
    return tuple(ready)


def set_instance_status(instance, status):
    """Every instance transition goes through here: checked against the one table, then told to
    the bus (and to a waiting parent or schedule) by `lifecycle`."""
    check_instance_transition(instance.status, status)
    old, instance.status = instance.status, status
    if status in INSTANCE_TERMINAL and old not in INSTANCE_TERMINAL:
        # Stamped before anything reacts: an instance its end lets start begins after this.
        instance.finished_at = timezone.now()
    lifecycle.instance_changed(instance, old, status)


def _leave_quota_hold(instance):
    """A quota hold ends (its type is under its share again, or the instance fails or ends). Out of
    `queued` through `waiting`: straight to running would announce a second `workflow.started`."""
    if quota_held(instance):
        instance.queued_reason = None
        if instance.status == I.QUEUED:
            set_instance_status(instance, I.WAITING)


def _first_blocking_failure(plan, runs):
    for sid in plan.order:
        run = runs[sid]
        if run.status == S.FAILED and plan.steps[sid]["on_error"] != "continue":
            return run
    return None


def _start_failing(instance, failed_run):
    instance.failing = True
    instance.error = {"step": failed_run.step_id, **(failed_run.error or {"message": "step failed"})}


def _advance_failing(instance, runs, plan, effects):
    """No new steps start; once nothing runs, compensate completed steps newest first.

    Only the end of the compensation chain (`instance_finish_failed`) ends a saga that started.
    Parked steps are cancelled with their waits, and their `wait`/`supervised` children stopped.
    """
    from .cascade import release_parked

    now = timezone.now()
    parked = StepRun.objects.filter(instance=instance, status__in=STEP_WAITING)
    parked_ids = [r.id for r in parked.only("id")]
    release_parked(instance, plan, parked_ids, reason="the parent instance failed")
    if parked_ids:
        from governance.escalations.deadlines import escalations_close

        escalations_close(instance, step_run_ids=parked_ids, reason="the instance failed")
    StepRun.objects.filter(instance=instance, status__in=[S.PENDING, S.READY, *STEP_WAITING]).update(
        status=S.CANCELLED, finished_at=now
    )
    # foreach items that have not started never will (nor will spawned items' children be
    # waited for: they were just stopped); a step whose items all stopped is done.
    StepItem.objects.filter(step_run__instance=instance, status__in=[S.READY, S.WAITING_CHILD]).update(
        status=S.CANCELLED)
    StepRun.objects.filter(instance=instance, status=S.RUNNING, item_count__isnull=False).exclude(
        items__status=S.RUNNING
    ).update(status=S.CANCELLED, finished_at=now)
    if StepRun.objects.filter(instance=instance, status=S.RUNNING).exists() or instance.compensation_started:
        save_state(instance)
        return
    instance.compensation_started = True
    to_compensate = pending_compensations(instance, plan)
    if to_compensate:
        effects.compensation = (instance.id, to_compensate)
        save_state(instance)
        return
    finish_failed(instance)


def pending_compensations(instance, plan):
    """Completed steps with a `compensate`, newest completion first (saga order)."""
    runs = StepRun.objects.filter(instance=instance, status=S.COMPLETED).order_by("-completed_seq")
    return [r.id for r in runs.only("id", "step_id") if plan.steps[r.step_id]["compensate"]]


def finish_failed(instance):
    set_instance_status(instance, I.FAILED)
    save_state(instance)


def _resolve_pending(instance, plan, runs, governance):
    """Decide every pending step whose dependencies allow it; returns the newly ready runs.

    A step about to run first meets its budget and its type's token quota, then governance: an
    instance-level gate (a `require_approval` condition, an escalated budget) stops resolving
    altogether, and a step that needs approval parks behind its own.
    """
    ready = []
    resources_allow = False  # budget and quota, asked once per pass: no usage is counted during it
    for sid in plan.order:
        run = runs[sid]
        if run.status != S.PENDING:
            continue
        if instance.gated:
            break
        decision = _dependency_decision(plan, runs, sid)
        if decision == "wait":
            continue
        step = plan.steps[sid]
        if decision == "skip" or not _condition_holds(instance, plan, runs, run, step):
            _finish(instance, plan, run, S.SKIPPED if run.status == S.PENDING else run.status)
            continue
        resources_allow = resources_allow or not (budget_enforce(instance, plan) or quota_hold(instance, plan))
        if not resources_allow or governance.holds_instance(plan, step):
            break
        # foreach items are rendered with `when`, before any approval, so approvers see them.
        has_work = step["foreach"] is None or _prepare_items(instance, plan, runs, run, step)
        if has_work and not governance.gate_step(plan, runs, run, step):
            run.status, run.ready_at = S.READY, timezone.now()
            ready.append(run)
        if run.status == S.COMPLETED:
            instance.completion_count += 1
            run.completed_seq = instance.completion_count
            run.save(update_fields=["completed_seq"])
    return ready


def plainly_ready(plan, step_id):
    """A step ready the moment its instance starts: no dependency, no condition, no items to
    render and no approval to ask for (an agent's risk needs a lookup, so agent steps are not)."""
    step = plan.steps[step_id]
    return (not plan.deps[step_id] and step["when"] is None and step["foreach"] is None
            and not step["approval"] and not step["agent"])


def _inline_candidate(plan, ready, queue):
    """The first ready plain step on `queue` with no time limit of its own (it would run under
    the calling task's) and no rate limit (its tokens are taken before a claim, by its own task), or None."""
    if not queue:
        return None
    for run in ready:
        step = plan.steps[run.step_id]
        if step_kind(step) == canvas.RUN and step["foreach"] is None and step["queue"] == queue \
                and not step["timeout_seconds"] and canvas.rate_limit_of(step) is None:
            return run
    return None


def _dependency_decision(plan, runs, sid):
    deps = [runs[d] for d in plan.deps[sid]]
    if not deps:
        return "run"
    done = [step_counts_as_done(d.status, plan.steps[d.step_id]["on_error"]) for d in deps]
    if plan.steps[sid]["join"] == "any" and any(done):
        return "run"
    if not all(d.status in STEP_TERMINAL for d in deps):
        return "wait"
    if any(d.status == S.FAILED and not ok for d, ok in zip(deps, done, strict=False)):
        return "wait"  # the instance is failing: this step will be cancelled, not skipped
    return "run" if any(done) else "skip"


def _condition_holds(instance, plan, runs, run, step):
    if step["when"] is None:
        return True
    try:
        return templating.evaluate_condition(step["when"], _scope(instance, plan, runs), plan.step_ids)
    except templating.TemplateError as exc:
        run.status = S.FAILED
        run.error = {"type": "TemplateError", "message": f"when: {exc}"}
        return False


def _prepare_items(instance, plan, runs, run, step):
    """Render and store the foreach items; True when there are items to run."""
    try:
        items = templating.render_value(step["foreach"], _scope(instance, plan, runs), plan.step_ids)
        if not isinstance(items, list):
            raise templating.TemplateError(f"foreach must yield a list, got {type(items).__name__}")
    except templating.TemplateError as exc:
        run.error = {"type": "TemplateError", "message": f"foreach: {exc}"}
        _finish(instance, plan, run, S.FAILED)
        return False
    existing = {i.index: i for i in StepItem.objects.filter(step_run=run)}
    StepItem.objects.filter(step_run=run, index__gte=len(items)).delete()
    for index, item in enumerate(items):
        if index in existing:
            StepItem.objects.filter(pk=existing[index].pk).update(
                item=item, status=S.READY, output=None, error=None, attempt_base=F("attempts"), task_id=""
            )
        else:
            StepItem.objects.create(step_run=run, index=index, item=item, status=S.READY)
    run.item_count = len(items)
    StepRun.objects.filter(id=run.id).update(item_count=run.item_count)
    if not items:
        run.output = []
        _finish(instance, plan, run, S.COMPLETED)
        return False
    return True


def _finish(instance, plan, run, status):
    run.status = status
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at", "error", "output", "item_count"])
    if status in (S.COMPLETED, S.FAILED):
        lifecycle.step_ended(instance, plan.spec["id"], run.step_id, status)


def _scope(instance, plan, runs):
    outputs = {sid: (r.status, r.output, r.decision) for sid, r in runs.items()}
    return build_scope(instance=instance, workflow=plan.spec["id"], runs=outputs)


def _complete(instance, plan, runs, effects):
    try:
        instance.result = instance_result(instance, plan, runs)
    except templating.TemplateError as exc:
        # A failure like any other: completed steps are compensated.
        instance.failing = True
        instance.error = {"type": "TemplateError", "message": f"result: {exc}"}
        _advance_failing(instance, runs, plan, effects)
        return
    set_instance_status(instance, I.COMPLETED)


def instance_result(instance, plan, runs):
    if plan.spec.get("result") is not None:
        return templating.render_value(plan.spec["result"], _scope(instance, plan, runs), plan.step_ids)
    return {sid: runs[sid].output for sid in plan.sinks if runs[sid].status == S.COMPLETED}
