"""Step transitions driven by workers: claim an attempt, record its outcome, join foreach items.

Claims are conditional updates, so a duplicated or stale message claims nothing; every
outcome is applied under the instance row lock, and only by the attempt that holds the step.
"""
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from orchestration.events.publish import Draft, publish
from orchestration.models import StepItem, StepRun, WorkflowInstance
from orchestration.resources.budgets import budget_enforce
from orchestration.resources.ledger import has_usage, usage_record
from orchestration.states import INSTANCE_RETRYABLE
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

from . import lifecycle
from .advance import advance
from .backoff import next_retry
from .effects import Effects
from .execute import Claim
from .parked import items_outcome
from .plan import plan_for_version_id
from .scope import run_outputs
from .transitions import (
    attempt_begin,
    attempt_end,
    engine_state,
    lock_instance,
    step_claim,
    step_complete,
    step_fail,
    step_release_held,
    step_retry_later,
)

ACTIVE_FOR_WORK = (I.RUNNING, I.WAITING)


def lock_step(step_run_id):
    """(instance locked, its step run, plan) for a step run, or None if there is no such step."""
    instance_id = StepRun.objects.filter(id=step_run_id).values_list("instance_id", flat=True).first()
    if instance_id is None:
        return None
    instance = lock_instance(instance_id)
    return instance, StepRun.objects.get(id=step_run_id), plan_for_version_id(instance.version_id)


def _instance_accepts_work(instance_id):
    return WorkflowInstance.objects.filter(id=instance_id, status__in=ACTIVE_FOR_WORK, failing=False).exists()


def item_claim(*, step_run_id, index, attempt, task_id, worker):
    """Like step_claim for one foreach item; `attempt` counts from 1 within the current round."""
    item = StepItem.objects.filter(step_run_id=step_run_id, index=index).select_related("step_run").first()
    if item is None or not _instance_accepts_work(item.step_run.instance_id):
        return None
    now = timezone.now()
    attempt += item.attempt_base
    claimed = (
        StepItem.objects.filter(pk=item.pk)
        .filter(Q(status=S.READY, attempts=attempt - 1) | Q(status=S.RUNNING, attempts=attempt, task_id=task_id))
        .update(status=S.RUNNING, attempts=attempt, task_id=task_id, heartbeat_at=now)
    )
    if not claimed:
        return None
    StepRun.objects.filter(id=step_run_id, status=S.READY).update(
        status=S.RUNNING, attempts=item.step_run.attempt_base + 1, worker=worker, started_at=Coalesce("started_at", now)
    )
    attempt_begin(step_run_id=step_run_id, item_index=index, number=attempt, now=now, worker=worker,
                  task_id=task_id)
    claim = _load_claim(step_run_id, item.step_run.instance_id, attempt, item.attempt_base)
    claim.item_index, claim.item = index, item.item
    return claim


def _load_claim(step_run_id, instance_id, attempt, attempt_base):
    instance = WorkflowInstance.objects.only("id", "context", "parent_id", "version_id", "trigger",
                                             "priority").get(id=instance_id)
    step_id = StepRun.objects.filter(id=step_run_id).values_list("step_id", flat=True).get()
    return Claim(step_run_id=step_run_id, instance_id=instance_id, step_id=step_id, attempt=attempt,
                 attempt_base=attempt_base, plan=plan_for_version_id(instance.version_id), instance=instance,
                 runs=run_outputs(instance_id))


@dataclass(frozen=True)
class Finish:
    """What the task does next: retry after `retry_in` seconds, run `next_claim` inline, or stop."""

    retry_in: float | None = None
    next_claim: Claim | None = None


@transaction.atomic
def step_attempt_finish(*, claim, outcome, task_id="", worker="", continue_on_queue=None):
    """Apply a finished attempt under the instance lock.

    With `continue_on_queue`, one plain step that this completion made ready on that queue is
    claimed for the calling task in the same transaction, saving it a trip through the broker.
    """
    now = timezone.now()
    retry_in = None
    if outcome.ok:
        workflow = claim.plan.spec["id"]
        completed = lifecycle.step_completed_event(claim.instance_id, workflow, claim.step_id, now)
        instance = step_complete(claim=claim, outcome=outcome, event=completed)
        if instance is None:
            transaction.set_rollback(True)  # the instance's completion count moved for nothing
            return Finish()  # a duplicate delivery already finished this attempt
        stored = engine_state(instance)
        if outcome.emitted:
            publish(emitted_drafts(instance, workflow, outcome.emitted))
        _count_usage(instance, claim, outcome)
    else:
        instance, stored = lock_instance(claim.instance_id), None
        retryable = instance.status in INSTANCE_RETRYABLE and not instance.failing
        retry_in = next_retry(claim.step["retry"], claim.attempt - claim.attempt_base) if retryable else None
        if retry_in is not None:
            changed = step_retry_later(claim, outcome.error, now + timezone.timedelta(seconds=retry_in))
        else:
            changed = step_fail(claim, outcome.error)
        if not changed:
            return Finish()  # this attempt no longer holds the step: its record stays as the holder left it
        attempt_end(claim, outcome)
        if not _count_usage(instance, claim, outcome) and retry_in is not None:
            return Finish(retry_in=retry_in)
        if retry_in is None:
            lifecycle.step_ended(instance, claim.plan.spec["id"], claim.step_id, S.FAILED)
    effects = Effects()
    runs = advance(instance, claim.plan, effects, inline_queue=continue_on_queue, as_stored=stored)
    inline = Inline(continue_on_queue, task_id, worker)
    next_claim = continue_inline(effects, inline, runs) if effects.inline is not None else None
    effects.send_on_commit()
    # Over budget, a step set to retry is cancelled with the failing instance, or retries meanwhile
    # when the overrun waits for a decision (a running step finishes).
    return Finish(retry_in=None if instance.failing else retry_in, next_claim=next_claim)


def _count_usage(instance, claim, outcome):
    """Count a recorded attempt's usage and check the budget against it (the caller's conditional
    update holds the attempt, so a redelivered outcome counts nothing). True when the budget now
    stops the instance's next steps."""
    return usage_record(instance=instance, plan=claim.plan, usage=outcome.usage) and budget_enforce(instance,
                                                                                                     claim.plan)


@dataclass(frozen=True)
class Inline:
    """The calling task, able to run one more plain step on `queue` before it ends."""

    queue: str
    task_id: str
    worker: str


def continue_inline(effects, inline, runs):
    """Claim the step advance held for this task straight from `pending`; if that fails it is
    made ready and dispatched like the others, so nothing is left behind."""
    dispatch, effects.inline = effects.inline, None
    outputs = {sid: (r.status, r.output, r.decision) for sid, r in runs.items()}
    next_claim = step_claim(step_run_id=dispatch.step_run_id, attempt=dispatch.attempt, task_id=inline.task_id,
                            worker=inline.worker, runs=outputs, held=True)
    if next_claim is None:
        step_release_held(dispatch.step_run_id)
        effects.dispatches.append(dispatch)
    return next_claim


@transaction.atomic
def item_attempt_finish(*, claim, outcome):
    """Record a foreach item's attempt; returns the retry countdown or None. The join decides."""
    # Usage is added to the instance's row: lock it first, as every outcome does, not after the item.
    instance = lock_instance(claim.instance_id) if has_usage(outcome.usage) else None
    attempt_end(claim, outcome)
    holds_item = Q(step_run_id=claim.step_run_id, index=claim.item_index, status=S.RUNNING, attempts=claim.attempt)
    retry_in = None
    if outcome.ok:
        held = StepItem.objects.filter(holds_item).update(status=S.COMPLETED, output=outcome.output, error=None)
    else:
        retryable = WorkflowInstance.objects.filter(id=claim.instance_id, status__in=INSTANCE_RETRYABLE,
                                                    failing=False).exists()
        retry_in = next_retry(claim.step["retry"], claim.attempt - claim.attempt_base) if retryable else None
        status = S.READY if retry_in is not None else S.FAILED
        held = StepItem.objects.filter(holds_item).update(status=status, error=outcome.error)
    if held and instance is not None and _count_usage(instance, claim, outcome):
        effects = Effects()  # the budget fails or gates the instance now, not when the items join
        advance(instance, claim.plan, effects)
        effects.send_on_commit()
        return None if instance.failing else retry_in
    return retry_in


@transaction.atomic
def items_join(*, step_run_id):
    """The chord body: a foreach step completes with its item outputs in order, or fails."""
    instance_id = StepRun.objects.filter(id=step_run_id).values_list("instance_id", flat=True).first()
    if instance_id is None:
        return
    instance = lock_instance(instance_id)
    run = StepRun.objects.get(id=step_run_id)
    items = list(StepItem.objects.filter(step_run=run).order_by("index"))
    if run.status != S.RUNNING or any(i.status not in (S.COMPLETED, S.FAILED, S.CANCELLED) for i in items):
        return
    run.status, run.output, run.error = items_outcome(items)
    run.finished_at = timezone.now()
    if run.status == S.COMPLETED:
        instance.completion_count += 1
        run.completed_seq = instance.completion_count
    run.save()
    plan = plan_for_version_id(instance.version_id)
    if run.status in (S.COMPLETED, S.FAILED):
        lifecycle.step_ended(instance, plan.spec["id"], run.step_id, run.status)
    effects = Effects()
    advance(instance, plan, effects)
    effects.send_on_commit()


def emitted_drafts(instance, workflow, emitted):
    """A step's `emit:` and `ctx.emit()` events: they carry the instance's correlation id unless
    they set their own (DESIGN §6.1)."""
    return [Draft(e["event"], e["payload"] or {}, source_workflow=workflow, source_instance_id=instance.id,
                  priority=instance.priority if e.get("priority") is None else e["priority"],
                  correlation_id=e.get("correlation_id") or instance.correlation_id)
            for e in emitted]
