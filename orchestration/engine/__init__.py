"""The durable DAG engine. Public services; everything else in this package is internal."""
from .errors import Conflict, EngineError, InvalidRequest, NotFound, PreconditionFailed
from .instances import (
    Origin,
    instance_finish_failed,
    instance_pause,
    instance_resume,
    instance_retry,
    instance_start,
    instance_terminate,
    instance_time_out,
    instances_time_out_expired,
    step_compensate_mark,
)
from .parked import park_item, park_step, parked_complete, parked_fail, parked_item_end, parked_items_join
from .reconcile import reconcile, steps_recover_lost
from .steps import (
    Finish,
    Inline,
    item_attempt_finish,
    item_claim,
    items_join,
    lock_step,
    step_attempt_finish,
)
from .transitions import lock_instance, step_claim, step_reclaim

__all__ = (
    "Conflict", "EngineError", "Finish", "Inline", "InvalidRequest", "NotFound", "Origin", "PreconditionFailed",
    "instance_finish_failed", "instance_pause", "instance_resume", "instance_retry", "instance_start",
    "instance_terminate", "instance_time_out", "instances_time_out_expired", "step_compensate_mark",
    "reconcile", "item_attempt_finish", "item_claim", "items_join", "lock_instance", "lock_step",
    "park_item", "park_step", "parked_complete", "parked_fail", "parked_item_end", "parked_items_join",
    "step_attempt_finish", "step_claim", "step_reclaim", "steps_recover_lost",
)
