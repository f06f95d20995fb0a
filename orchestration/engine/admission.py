"""Admission under concurrency limits (DESIGN §6.6): an instance over a limit is `queued`, never
dropped, and a freed slot starts the queued instance of highest priority, then oldest, in the
transaction that frees it.

Locks are taken instance first, then the admission lock (orchestration.resources.admission);
under the admission lock other instances are only ever locked with SKIP LOCKED, so no two
transactions can wait on each other. `cancel_in_progress` stops its victims before it takes
the admission lock, for the same reason.
"""
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from governance.audit import audit_record
from orchestration.models import ConcurrencyPool, WorkflowInstance
from orchestration.resources import admission as slots
from orchestration.states import INSTANCE_TERMINAL
from orchestration.states import InstanceStatus as I

from .advance import advance, set_instance_status
from .effects import Effects
from .plan import plan_for_version_id


@dataclass(frozen=True)
class Verdict:
    """What admission decided: `running` (slots taken), `queued` (with the limit holding it) or
    `terminated` (a full concurrency key with strategy `cancel_new`)."""

    status: str
    reason: dict | None = None


ADMITTED = Verdict(I.RUNNING)


def admit(pools, *, newcomer):
    """Take a slot in every pool, or say which limit holds the instance. `newcomer` names the
    instance for the record of a `cancel_in_progress` stop."""
    for pool in pools:
        if pool.strategy == "cancel_in_progress":
            _cancel_oldest(pool, newcomer)
    slots.admission_lock()
    counts = slots.pools_read(pools)
    full = slots.first_full(pools, counts)
    if full is None:
        slots.slots_take([p.key for p in pools])
        return ADMITTED
    reason = slots.queued_reason(full, counts)
    if full.strategy == "cancel_new":
        return Verdict(I.TERMINATED, {**reason, "strategy": "cancel_new"})
    return Verdict(I.QUEUED, reason)


def _cancel_oldest(pool, newcomer):
    """Stop the oldest running instances of a full key so that the new one fits."""
    from .cascade import stop_instance
    from .steps import lock_instance

    in_use, limit = slots.pool_in_use(pool.key)
    if in_use < limit:
        return
    for victim_id in slots.oldest_holders(pool.key, in_use - limit + 1):
        victim = lock_instance(victim_id)
        if victim.status in INSTANCE_TERMINAL:
            continue
        message = f"cancelled in favour of instance {newcomer} (concurrency key {pool.key!r}, cancel_in_progress)"
        victim.error = {"type": "ConcurrencyCancelled", "message": message}
        stop_instance(victim, I.TERMINATED)
        audit_record(actor=None, verb="instance.terminate", target_type="instance", target_id=victim.id,
                     details={"reason": message})


def slots_release(instance):
    """An instance that held slots ended: give them back and hand them on at once."""
    slots.admission_lock()
    slots.slots_give_back(instance.slot_keys)
    WorkflowInstance.objects.filter(id=instance.id).update(holds_slots=False)
    instance.holds_slots = False
    hand_on(instance.slot_keys)


def hand_on(keys):
    """Start queued instances that need `keys` while their pools have room; under the admission
    lock. Returns how many started."""
    counts = {}
    started = 0
    for queued in slots.waiting_for(keys):
        missing = [k for k in queued.slot_keys if k not in counts]
        if missing:
            counts.update({key: [in_use, limit] for key, in_use, limit in ConcurrencyPool.objects.filter(
                key__in=missing).values_list("key", "in_use", "limit")})
        if any(key not in counts or counts[key][0] >= counts[key][1] for key in queued.slot_keys):
            continue  # held by another pool: it stays in its place
        slots.slots_take(queued.slot_keys, counts)
        _start_queued(queued)
        started += 1
        if all(counts.get(key, [0, 0])[0] >= counts.get(key, [0, 0])[1] for key in keys):
            break
    return started


def _start_queued(instance):
    instance.holds_slots, instance.queued_reason = True, None
    if instance.started_at is None:
        instance.started_at = timezone.now()
        set_instance_status(instance, I.RUNNING)  # announced as `workflow.started`
    else:  # a retry that was queued: started long ago, and advancing sets it running
        set_instance_status(instance, I.WAITING)
    WorkflowInstance.objects.filter(id=instance.id).update(holds_slots=True, queued_reason=None,
                                                           started_at=instance.started_at)
    effects = Effects()
    advance(instance, plan_for_version_id(instance.version_id), effects)
    effects.send_on_commit()


def queue_sweep():
    """Beat: hand free slots to queued instances (normally done by the end that freed them)."""
    if not slots.queue_has_waiting():
        return 0
    with transaction.atomic():
        slots.admission_lock()
        keys = slots.pools_with_room()
        return hand_on(keys) if keys else 0


def admission_reconcile():
    """Reconciler: recount every pool from the instances that hold it (freeing slots of instances
    that ended without giving theirs back), then hand on whatever has room."""
    with transaction.atomic():
        slots.admission_lock()
        freed, corrected = slots.pools_recount()
        keys = slots.pools_with_room()
        started = hand_on(keys) if keys else 0
        slots.idle_key_pools_prune()
    return {"slots_freed": freed, "pools_corrected": corrected, "queued_started": started}
