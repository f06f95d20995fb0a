"""Pure canvas building: dispatch plans in, Celery signatures out (no broker, no database).

Steps that become ready together go out as one `group`; a foreach step is a `chord` whose
header runs the items (in `max_parallel` lanes, each a `chain`) and whose body joins them;
a `spawn` step is one child start, or with foreach a `group` of child starts whose join is
done by the children's ends (`orchestration.spawning`); a `wait_for` step is one parking
task; compensations run as a `chain` in reverse completion order, ending with the finaliser.
"""
from dataclasses import dataclass

from celery import chain, chord, group

# A hard limit a little past the soft one, so an action that ignores the soft limit still ends.
HARD_LIMIT_GRACE_SECONDS = 10
RUN, SPAWN, WAIT = "run", "spawn", "wait"


@dataclass(frozen=True)
class StepDispatch:
    step_run_id: int
    attempt: int
    queue: str = "default"
    timeout_seconds: float | None = None
    items: tuple | None = None  # foreach: ((index, attempt within the round), ...)
    max_parallel: int | None = None
    priority: int | None = None  # the instance's: 0..9, 9 most urgent
    kind: str = RUN
    countdown: float | None = None  # a retry's backoff
    rate_limit: tuple | None = None  # (bucket, cost): tokens the task takes before it claims the step


def celery_priority(priority):
    """On Redis, Celery serves priority 0 first (and unprioritised messages count as 0): a DAC
    priority of 9 (critical) is sent as 0, 5 (normal) as 4, 2 (low) as 7."""
    return 9 - max(0, min(9, priority))


def rate_limit_of(step):
    """A step's `rate_limit` as the (bucket, cost) its tasks carry, or None."""
    limit = step.get("rate_limit")  # absent from specs stored before rate limits existed
    return (limit["key"], limit["cost"]) if limit else None


def rate_limit_kwargs(rate_limit):
    """The task keyword that carries a rate limit: none at all without one, so those messages are unchanged."""
    return {"rate_limit": tuple(rate_limit)} if rate_limit else {}


def _options(d):
    options = {"queue": d.queue}
    if d.timeout_seconds and d.kind == RUN:
        options["soft_time_limit"] = d.timeout_seconds
        options["time_limit"] = d.timeout_seconds + HARD_LIMIT_GRACE_SECONDS
    if d.priority is not None:
        options["priority"] = celery_priority(d.priority)
    if d.countdown:
        options["countdown"] = d.countdown
    return options


def step_signature(d):
    from . import tasks
    from .events import tasks as event_tasks
    from .spawning import tasks as spawn_tasks

    if d.kind == WAIT:
        return event_tasks.park_wait.si(d.step_run_id, d.attempt).set(**_options(d))
    if d.kind == SPAWN:
        spawn = spawn_tasks.spawn_child
        if d.items is None:
            return spawn.si(d.step_run_id, None, d.attempt).set(**_options(d))
        starts = [spawn.si(d.step_run_id, index, attempt).set(**_options(d)) for index, attempt in d.items]
        return starts[0] if len(starts) == 1 else group(starts)
    limited = rate_limit_kwargs(d.rate_limit)
    if d.items is None:
        return tasks.run_step.si(d.step_run_id, d.attempt, **limited).set(**_options(d))
    items = [tasks.run_item.si(d.step_run_id, index, attempt, **limited).set(**_options(d))
             for index, attempt in d.items]
    lanes = d.max_parallel
    if lanes and lanes < len(items):
        header = group(chain(*items[lane::lanes]) for lane in range(lanes))
    else:
        header = group(items)
    return chord(header, tasks.join_items.si(d.step_run_id).set(queue=d.queue))


def dispatch_signature(dispatches):
    """One signature for every step that became ready in the same transition."""
    signatures = [step_signature(d) for d in dispatches]
    return signatures[0] if len(signatures) == 1 else group(signatures)


def compensation_signature(instance_id, step_run_ids, queue="default"):
    from . import tasks

    links = [tasks.compensate_step.si(step_run_id).set(queue=queue) for step_run_id in step_run_ids]
    return chain(*links, tasks.finish_failed.si(str(instance_id)).set(queue=queue))
