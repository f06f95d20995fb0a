"""Steps parked without a worker (DESIGN §1.3, §6.3, §6.4): a `wait_for` step in `waiting_event`,
a `spawn` step (or each of its foreach items) in `waiting_child`.

The task that parks a step claims it with one conditional update (`ready` after attempt n-1 ->
waiting at attempt n), so a duplicated or redelivered message parks nothing twice. What frees
it (an event, a child's end, a timeout) ends it with another conditional update on the waiting
status and attempt, under the instance lock, so it is freed at most once. Callers hold the lock.
"""
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from metrics import tracing
from orchestration.models import AttemptStatus, StepAttempt, StepItem, StepRun
from orchestration.states import INSTANCE_RETRYABLE
from orchestration.states import InstanceStatus as I
from orchestration.states import StepStatus as S

from . import lifecycle
from .advance import advance, dispatch_for
from .backoff import next_retry
from .scope import mask
from .transitions import attempt_begin

ITEM_ENDED = (S.COMPLETED, S.FAILED, S.CANCELLED)


def park_step(instance, plan, run, effects, *, attempt, status, inputs=None):
    """Claim attempt `attempt` of a ready step into `status`; False if it is not this message's.

    Only while the instance accepts work (running or waiting, not failing), as a claim would."""
    if instance.failing or instance.status not in (I.RUNNING, I.WAITING):
        return False
    now = timezone.now()
    claimed = StepRun.objects.filter(id=run.id, status=S.READY, attempts=attempt - 1).update(
        status=status, attempts=attempt, started_at=Coalesce("started_at", now), task_id="")
    if not claimed:
        return False
    run.status, run.attempts = status, attempt
    attempt_begin(step_run_id=run.id, item_index=None, number=attempt, now=now, inputs=mask(inputs))
    advance(instance, plan, effects)
    return True


def park_item(instance, plan, run, effects, *, index, attempt, inputs=None):
    """Claim foreach item `index` at `attempt` (counted within the round) into waiting_child.

    Returns the item's absolute attempt number, or None if it is not this message's to park."""
    if instance.failing or instance.status not in (I.RUNNING, I.WAITING):
        return None
    item = StepItem.objects.filter(step_run=run, index=index).only("attempt_base").first()
    if item is None:
        return None
    number = attempt + item.attempt_base
    now = timezone.now()
    claimed = StepItem.objects.filter(step_run=run, index=index, status=S.READY, attempts=number - 1).update(
        status=S.WAITING_CHILD, attempts=number)
    if not claimed:
        return None
    StepRun.objects.filter(id=run.id, status=S.READY).update(
        status=S.WAITING_CHILD, attempts=run.attempt_base + 1, started_at=Coalesce("started_at", now))
    run.status = S.WAITING_CHILD
    attempt_begin(step_run_id=run.id, item_index=index, number=number, now=now, inputs=mask(inputs))
    advance(instance, plan, effects)
    return number


def parked_complete(instance, plan, run, output, effects, *, status):
    """A parked step completes with `output`; False if it no longer waits at this attempt."""
    instance.completion_count += 1
    done = StepRun.objects.filter(id=run.id, status=status, attempts=run.attempts).update(
        status=S.COMPLETED, output=output, error=None, finished_at=timezone.now(),
        completed_seq=instance.completion_count)
    if not done:
        instance.completion_count -= 1
        return False
    _attempt_close(run.id, None, run.attempts, output=output)
    lifecycle.step_ended(instance, plan.spec["id"], run.step_id, S.COMPLETED)
    advance(instance, plan, effects)
    return True


def parked_fail(instance, plan, run, error, effects, *, status, retry=True):
    """A parked step fails, or with `retry` and budget left goes back to ready after its backoff."""
    retry_in = _retry_in(instance, plan.steps[run.step_id], run.attempts - run.attempt_base) if retry else None
    held = StepRun.objects.filter(id=run.id, status=status, attempts=run.attempts)
    if retry_in is not None:
        done = held.update(status=S.READY, error=error, ready_at=timezone.now() + timezone.timedelta(seconds=retry_in))
        if done and instance.status != I.PAUSED:
            effects.dispatches.append(dispatch_for(instance, plan, run, countdown=retry_in))
    else:
        done = held.update(status=S.FAILED, error=error, finished_at=timezone.now())
        if done:
            lifecycle.step_ended(instance, plan.spec["id"], run.step_id, S.FAILED)
    if not done:
        return False
    _attempt_close(run.id, None, run.attempts, error=error)
    advance(instance, plan, effects)
    return True


def parked_item_end(instance, plan, run, index, attempt, effects, *, output=None, error=None, retry=True):
    """Item `index` (waiting at absolute `attempt`) ended; then start the next ready items the
    step's `max_parallel` allows, or join the step once every item has ended."""
    held = StepItem.objects.filter(step_run=run, index=index, status=S.WAITING_CHILD, attempts=attempt)
    if error is None:
        done = held.update(status=S.COMPLETED, output=output, error=None)
    else:
        base = StepItem.objects.filter(step_run=run, index=index).values_list("attempt_base", flat=True).first() or 0
        retry_in = _retry_in(instance, plan.steps[run.step_id], attempt - base) if retry else None
        done = held.update(status=S.READY if retry_in is not None else S.FAILED, error=error)
        if done and retry_in is not None and instance.status != I.PAUSED:
            effects.dispatches.append(dispatch_for(instance, plan, run, countdown=retry_in))
    if not done:
        return False
    _attempt_close(run.id, index, attempt, output=output, error=error)
    if not parked_items_join(instance, plan, run, effects) and instance.status not in (I.PAUSED,):
        dispatch = dispatch_for(instance, plan, run)
        if dispatch.items and not any(d.step_run_id == run.id for d in effects.dispatches):
            effects.dispatches.append(dispatch)
    return True


def parked_items_join(instance, plan, run, effects):
    """The join of a spawn foreach: complete with the children's results in item order, or fail."""
    items = list(StepItem.objects.filter(step_run=run).order_by("index"))
    if any(i.status not in ITEM_ENDED for i in items):
        return False
    status, output, error = items_outcome(items)
    seq = instance.completion_count + 1 if status == S.COMPLETED else None
    done = StepRun.objects.filter(Q(status=S.WAITING_CHILD) | Q(status=S.READY), id=run.id).update(
        status=status, output=output, error=error, finished_at=timezone.now(), completed_seq=seq)
    if not done:
        return False
    if seq:
        instance.completion_count = seq
    if status in (S.COMPLETED, S.FAILED):
        lifecycle.step_ended(instance, plan.spec["id"], run.step_id, status)
    advance(instance, plan, effects)
    return True


def items_outcome(items):
    """(status, output, error) of a foreach step whose items all ended, items in index order."""
    if any(i.status == S.CANCELLED for i in items):  # the instance failed meanwhile
        return S.CANCELLED, None, None
    failed = [i for i in items if i.status == S.FAILED]
    if failed:
        return S.FAILED, None, {
            "type": "ItemsFailed",
            "message": f"{len(failed)} of {len(items)} items failed: "
                       + "; ".join(f"[{i.index}] {(i.error or {}).get('message', '')}" for i in failed[:5]),
            "items": {str(i.index): i.error for i in failed},
        }
    return S.COMPLETED, [i.output for i in items], None


def _retry_in(instance, step, used_attempts):
    """The backoff before the next try, or None: no budget left, or an instance that takes no retry."""
    if instance.failing or instance.status not in INSTANCE_RETRYABLE:
        return None
    return next_retry(step["retry"], used_attempts)


def _attempt_close(step_run_id, item_index, number, *, output=None, error=None):
    StepAttempt.objects.filter(step_run_id=step_run_id, item_index=item_index, number=number).update(
        status=AttemptStatus.FAILED if error else AttemptStatus.SUCCEEDED, finished_at=timezone.now(),
        output=None if error else output, error_type=(error or {}).get("type", "")[:200],
        error_message=(error or {}).get("message", ""))
    tracing.attempt_ended(step_run_id, item_index, number)
