"""The engine's state machines: statuses and the one table of allowed transitions."""
from django.db import models


class InstanceStatus(models.TextChoices):
    PENDING = "pending", "pending"
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    WAITING = "waiting", "waiting"
    PAUSED = "paused", "paused"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"
    TERMINATED = "terminated", "terminated"
    TIMED_OUT = "timed_out", "timed out"


class StepStatus(models.TextChoices):
    PENDING = "pending", "pending"
    READY = "ready", "ready"
    RUNNING = "running", "running"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"
    SKIPPED = "skipped", "skipped"
    WAITING_APPROVAL = "waiting_approval", "waiting for approval"
    WAITING_EVENT = "waiting_event", "waiting for an event"
    WAITING_CHILD = "waiting_child", "waiting for a child"
    CANCELLED = "cancelled", "cancelled"
    COMPENSATED = "compensated", "compensated"


I, S = InstanceStatus, StepStatus

INSTANCE_TERMINAL = frozenset({I.COMPLETED, I.FAILED, I.TERMINATED, I.TIMED_OUT})
INSTANCE_ACTIVE = frozenset({I.PENDING, I.QUEUED, I.RUNNING, I.WAITING, I.PAUSED})
# A failed try is retried only in these (a paused or queued instance keeps its budget: the retry
# waits in `ready` until it runs again).
INSTANCE_RETRYABLE = frozenset({I.RUNNING, I.WAITING, I.PAUSED, I.QUEUED})

INSTANCE_TRANSITIONS = {
    I.PENDING: {I.QUEUED, I.RUNNING, I.FAILED, I.TERMINATED},
    # Queued: waiting for a concurrency slot (before it starts) or for its type's token quota
    # (a started instance whose next steps are held).
    I.QUEUED: {I.RUNNING, I.WAITING, I.TERMINATED, I.TIMED_OUT, I.FAILED},
    I.RUNNING: {I.WAITING, I.QUEUED, I.PAUSED, I.COMPLETED, I.FAILED, I.TERMINATED, I.TIMED_OUT},
    I.WAITING: {I.RUNNING, I.QUEUED, I.PAUSED, I.COMPLETED, I.FAILED, I.TERMINATED, I.TIMED_OUT},
    I.PAUSED: {I.RUNNING, I.WAITING, I.TERMINATED, I.TIMED_OUT, I.FAILED, I.COMPLETED},
    I.FAILED: {I.RUNNING, I.QUEUED},  # retry (queued again when a limit holds it)
    I.TIMED_OUT: {I.RUNNING, I.QUEUED},  # retry
    I.COMPLETED: set(),
    I.TERMINATED: set(),
}

STEP_TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.SKIPPED, S.CANCELLED, S.COMPENSATED})
STEP_WAITING = frozenset({S.WAITING_APPROVAL, S.WAITING_EVENT, S.WAITING_CHILD})
# Step statuses move by conditional UPDATEs in orchestration/engine (transitions.py, which lists them,
# then parked.py, steps.py, advance.py): each WHERE clause is the guard, so a stale message changes nothing.


class IllegalTransition(Exception):
    def __init__(self, kind, current, target):
        super().__init__(f"{kind} cannot go from {current} to {target}")
        self.current = current
        self.target = target


def check_instance_transition(current, target):
    if target != current and target not in INSTANCE_TRANSITIONS[current]:
        raise IllegalTransition("instance", current, target)


def step_counts_as_done(status, on_error):
    """Whether a dependency in `status` lets its dependents proceed."""
    return status == S.COMPLETED or (status == S.FAILED and on_error == "continue")
