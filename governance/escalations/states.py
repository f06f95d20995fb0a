"""The escalation state machine: statuses, levels, resolutions and the one table of transitions."""
from django.db import models


class EscalationStatus(models.TextChoices):
    PENDING = "pending", "pending"
    ACKNOWLEDGED = "acknowledged", "acknowledged"
    RESOLVED = "resolved", "resolved"
    EXPIRED = "expired", "expired"


class EscalationLevel(models.TextChoices):
    INFO = "info", "info"
    REVIEW = "review", "review"
    APPROVAL = "approval", "approval"
    INTERVENTION = "intervention", "intervention"


class Gate(models.TextChoices):
    """What an escalation holds back: one parked step, the instance's next steps, or nothing (a notice)."""

    STEP = "step", "step"
    INSTANCE = "instance", "instance"
    NONE = "none", "none"


E = EscalationStatus

OPEN = frozenset({E.PENDING, E.ACKNOWLEDGED})
CLOSED = frozenset({E.RESOLVED, E.EXPIRED})

TRANSITIONS = {
    E.PENDING: {E.ACKNOWLEDGED, E.RESOLVED, E.EXPIRED},
    E.ACKNOWLEDGED: {E.RESOLVED, E.EXPIRED},
    E.RESOLVED: set(),
    E.EXPIRED: set(),
}

APPROVE, REJECT, ACKNOWLEDGE = "approve", "reject", "acknowledge"
DEFAULT_OPTIONS = (APPROVE, REJECT)
# The resolution an escalation gets for each kind of decision (an option is its own resolution).
RESOLUTION_OF = {APPROVE: "approved", REJECT: "rejected", ACKNOWLEDGE: "acknowledged"}


class IllegalEscalationTransition(Exception):
    def __init__(self, current, target):
        super().__init__(f"escalation cannot go from {current} to {target}")
        self.current, self.target = current, target


def check_transition(current, target):
    if target != current and target not in TRANSITIONS[current]:
        raise IllegalEscalationTransition(current, target)


def is_open(status):
    return status in OPEN


def lets_step_run(option):
    """Any option but `reject` lets the gated step run (DESIGN §7.1)."""
    return option != REJECT
