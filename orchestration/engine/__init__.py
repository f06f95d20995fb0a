"""The durable DAG engine. Public services; everything else in this package is internal."""
from .claims import step_claim
from .errors import Conflict, EngineError, InvalidRequest, NotFound
from .instances import (
    instance_finish_failed,
    instance_pause,
    instance_resume,
    instance_retry,
    instance_start,
    instance_terminate,
    instance_time_out,
    instances_time_out_expired,
    step_compensate_mark,
    step_decide,
)
from .reconcile import reconcile
from .steps import Finish, item_attempt_finish, item_claim, items_join, step_attempt_finish

__all__ = (
    "Conflict", "EngineError", "Finish", "InvalidRequest", "NotFound",
    "instance_finish_failed", "instance_pause", "instance_resume", "instance_retry", "instance_start",
    "instance_terminate", "instance_time_out", "instances_time_out_expired", "step_compensate_mark",
    "step_decide", "reconcile", "item_attempt_finish", "item_claim", "items_join", "step_attempt_finish", "step_claim",
)
