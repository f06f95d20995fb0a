"""Celery tasks: thin wrappers that load by id, call the engine, and own retries.

A task never waits on another: parked steps live in the database and are resumed by the
decision, event or timer that frees them.
"""
import logging
import time
from dataclasses import dataclass

from celery import shared_task
from django.conf import settings
from django.db import DataError, InterfaceError, OperationalError

from . import engine
from .actions import registry as actions
from .canvas import rate_limit_kwargs, rate_limit_of
from .engine.execute import failed_outcome, run_attempt, run_compensation
from .engine.followups import followups_here
from .events.publish import reactions_deferred
from .periodic import log_outcome
from .resources import ratelimits
from .resources.deferral import step_defer

logger = logging.getLogger(__name__)

# A worker imports this module as it starts (before its first task): the action modules come with
# it, so a broken module in DAC_ACTION_MODULES stops the worker at start-up. (Django start-up
# leaves them to the first action lookup: orchestration.apps.)
actions.load_action_modules()

# A database restart or a dropped connection is retried by Celery, not lost.
DB_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "max_retries": 20,
}


@shared_task(bind=True, ignore_result=True, **DB_RETRY)
def run_step(self, step_run_id, attempt, rate_limit=None, reserved=False):
    """Run attempt `attempt` (absolute number) of a step, then any plain successor it made
    ready on this queue, inline, while the task stays within its time budget.

    With `rate_limit` ((bucket, cost)) it first takes the step's tokens; without them it reserves
    its turn and the same message goes out again for that time, `reserved` (neither a retry nor an
    attempt), and the worker moves on: it never sleeps for tokens.
    """
    started = time.monotonic()
    tokens = Tokens.take(rate_limit, reserved=reserved)
    if tokens.wait is not None:
        later = {**(self.request.kwargs or {}), "reserved": tokens.reserved}
        if step_defer(step_run_id=step_run_id, attempt=attempt, wait_seconds=tokens.wait):
            self.signature_from_request(kwargs=later, countdown=tokens.wait).apply_async()
        elif redelivered(self):  # its worker may have died holding the step: only this task id may take it back
            raise self.retry(kwargs=later, countdown=tokens.wait, max_retries=None)
        else:
            tokens.refund()  # a duplicate: nobody will use the turn it reserved
        return
    claim = engine.step_claim(step_run_id=step_run_id, attempt=attempt, task_id=self.request.id,
                              worker=self.request.hostname or "", redelivered=redelivered(self))
    if claim is None:
        tokens.refund()
        return
    run_claims(self, claim, started=started, outcome=tokens.refusal)


@dataclass(frozen=True)
class Tokens:
    """The tokens of a rate-limited task: taken (`bucket`, `cost`), reserved for a turn `wait`
    seconds away (`reserved`), or none yet (`wait`: when to ask again); `refusal` (a failed
    Outcome) when the limit cannot be served, e.g. its bucket is no longer defined."""

    bucket: object = None
    cost: float = 0
    wait: float | None = None
    reserved: bool = False
    refusal: object = None

    @classmethod
    def take(cls, rate_limit, *, reserved=False):
        """`reserved`: this message was sent for the turn its tokens were reserved for."""
        if not rate_limit:
            return cls()
        name, cost = rate_limit
        try:
            bucket = ratelimits.bucket_get(name)
            if reserved:
                return cls(bucket, cost)
            granted, wait = ratelimits.rate_limit_take(bucket=bucket, cost=cost)
        except ratelimits.RateLimitUnusable as exc:  # fails the attempt, so its retry policy bounds it
            return cls(refusal=failed_outcome("RateLimitError", str(exc)))
        if not granted:
            return cls(wait=wait)
        return cls(bucket, cost, wait=wait or None, reserved=bool(wait))

    def refund(self):
        if self.bucket is not None:
            ratelimits.rate_limit_refund(bucket=self.bucket, cost=self.cost)


def redelivered(task):
    """A message seen before: its worker died, or the task is retrying a database error."""
    return bool((task.request.delivery_info or {}).get("redelivered")) or task.request.retries > 0


def inline_for(task, started):
    """The task as an `engine.Inline` while it may still continue into a step, else None."""
    queue = _inline_queue(task.request, started)
    return engine.Inline(queue, task.request.id, task.request.hostname or "") if queue else None


def run_claims(self, claim, *, started, outcome=None):
    """Run a claimed attempt, then the plain successors its completions hand this task, while the
    task's inline budget lasts; reactions and follow-ups of all of it go out at the end. A given
    `outcome` is the first attempt's, which then does not run."""
    with followups_here(), reactions_deferred():
        _run_claims(self, claim, self.request.hostname or "", started, outcome)


def _run_claims(self, claim, worker, started, outcome):
    while claim is not None:
        options = {"task_id": self.request.id, "worker": worker,
                   "continue_on_queue": _inline_queue(self.request, started)}
        try:
            finish = engine.step_attempt_finish(claim=claim, outcome=outcome or run_attempt(claim), **options)
        except DataError as exc:  # the database refused the outcome: a failed attempt, not a stuck step
            outcome = failed_outcome("UnstorableResult", f"the database refused the result: {exc}")
            finish = engine.step_attempt_finish(claim=claim, outcome=outcome, **options)
        if finish.retry_in is not None:
            # The retried step's own rate limit, not that of the step this task was sent for.
            limited = rate_limit_kwargs(rate_limit_of(claim.step))
            if self.name != run_step.name:  # a step another task continued into: its retry is a run_step
                run_step.apply_async(args=(claim.step_run_id, claim.attempt + 1), kwargs=limited,
                                     countdown=finish.retry_in, queue=claim.step["queue"])
                return
            raise self.retry(args=(claim.step_run_id, claim.attempt + 1), kwargs=limited, countdown=finish.retry_in,
                             max_retries=None)
        claim, outcome = finish.next_claim, None


def _inline_queue(request, started):
    """The queue to continue on inline, or None: never under a task time limit (it would span
    several steps) and never past DAC_INLINE_BUDGET_SECONDS, so long runs go back to the queue."""
    if any(request.timelimit or ()) or time.monotonic() - started > settings.DAC_INLINE_BUDGET_SECONDS:
        return None
    return (request.delivery_info or {}).get("routing_key") or settings.CELERY_TASK_DEFAULT_QUEUE


@shared_task(bind=True, **DB_RETRY)
def run_item(self, step_run_id, index, attempt, rate_limit=None, reserved=False):
    """Run one foreach item (a chord header task). `attempt` counts from 1 in this round.

    It always returns normally so the chord body runs; failures are recorded on the item. An
    item without tokens retries at the same attempt at its reserved turn, keeping its chord whole.
    """
    tokens = Tokens.take(rate_limit, reserved=reserved)
    if tokens.wait is not None:
        deferred = step_defer(step_run_id=step_run_id, attempt=attempt, wait_seconds=tokens.wait, index=index)
        if deferred or redelivered(self):
            raise self.retry(kwargs={**(self.request.kwargs or {}), "reserved": tokens.reserved},
                             countdown=tokens.wait, max_retries=None)
        tokens.refund()  # a duplicate: nobody will use the turn it reserved
        return None
    claim = engine.item_claim(step_run_id=step_run_id, index=index, attempt=attempt, task_id=self.request.id,
                              worker=self.request.hostname or "")
    if claim is None:
        tokens.refund()
        return None
    retry_in = engine.item_attempt_finish(claim=claim, outcome=tokens.refusal or run_attempt(claim))
    if retry_in is not None:
        raise self.retry(args=(step_run_id, index, attempt + 1), countdown=retry_in, max_retries=None)
    return index


@shared_task(ignore_result=True, **DB_RETRY)
def join_items(step_run_id):
    engine.items_join(step_run_id=step_run_id)


@shared_task(ignore_result=True, **DB_RETRY)
def compensate_step(step_run_id):
    engine.step_compensate_mark(step_run_id=step_run_id, error=run_compensation(step_run_id))


@shared_task(ignore_result=True, **DB_RETRY)
def finish_failed(instance_id):
    engine.instance_finish_failed(instance_id=instance_id)


@shared_task(ignore_result=True)
def sweep_timeouts():
    """Beat, every DAC_SWEEP_INTERVAL_SECONDS: instance deadlines, `wait_for` timeouts, debounce
    windows whose time has come, idempotency keys past 24 h."""
    from .events.services import events_sweep

    done = {"instances_timed_out": engine.instances_time_out_expired(), **events_sweep()}
    return log_outcome(logger, "timeout sweep", done)


@shared_task(ignore_result=True)
def reconcile():
    """Beat, every DAC_RECONCILE_INTERVAL_SECONDS: re-send from the database what Redis lost."""
    from django.utils import timezone

    from governance.notifications.services import notifications_reconcile

    from .engine.admission import admission_reconcile
    from .events.services import events_reconcile
    from .spawning.reconcile import spawning_reconcile

    settle = timezone.timedelta(seconds=settings.DAC_RECONCILE_READY_AFTER_SECONDS)
    return log_outcome(logger, "reconcile", {
        **engine.reconcile().as_dict(), **events_reconcile(), **spawning_reconcile(settle=settle),
        **notifications_reconcile(), **admission_reconcile()})
