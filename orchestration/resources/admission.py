"""Admission accounting (DESIGN §6.6): which concurrency pools an instance needs, and taking and
giving back their slots exactly under concurrent starts.

Every decision about slots is made under one transaction-scoped advisory lock, held until the
deciding transaction commits: a start, an end that frees slots and the sweep that hands them on
are serialised, so a count read under the lock is the count every other admission sees. Only
instances that have a limit take the lock; an unlimited deployment pays nothing. The engine
moves the instances' states (orchestration.engine.admission); this module keeps the counts.
"""
import hashlib
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from orchestration import templating
from orchestration.models import ConcurrencyPool, WorkflowInstance
from orchestration.states import INSTANCE_TERMINAL
from orchestration.states import InstanceStatus as I

from .config import type_limits

# pg_advisory_xact_lock key of admission decisions ("DAC admit" in ASCII).
ADMISSION_LOCK = 0x44414341444D4954
MAX_KEY_VALUE_LENGTH = 200
# Queued instances looked at per freed pool in one pass (the sweep goes on from there), read and
# locked this many at a time.
HAND_ON_SCAN = 200
HAND_ON_BATCH = 8


@dataclass(frozen=True)
class Pool:
    """One limit an instance is subject to. `limit_name` is how the limit is written by its user."""

    key: str
    limit: int
    limit_name: str
    strategy: str = "queue"


class ConcurrencyKeyError(ValueError):
    """The workflow's `concurrency.key` could not be rendered from the start's context."""


def pools_for(spec, context, *, trigger=None):
    """The pools a start of `spec` with `context` needs, in lock order; [] when nothing limits it."""
    pools = []
    if settings.DAC_MAX_RUNNING:
        pools.append(Pool("global", settings.DAC_MAX_RUNNING, "DAC_MAX_RUNNING"))
    per_type = type_limits().get(spec.get("type") or "")
    if per_type:
        pools.append(Pool(f"type:{spec['type']}", per_type, "DAC_MAX_RUNNING_PER_TYPE"))
    if spec.get("max_concurrent"):
        pools.append(Pool(f"workflow:{spec['id']}", spec["max_concurrent"], "max_concurrent"))
    concurrency = spec.get("concurrency")
    if concurrency:
        value = concurrency_key_value(concurrency["key"], context, trigger)
        pools.append(Pool(f"key:{spec['id']}:{value}", concurrency["limit"], "concurrency", concurrency["strategy"]))
    return pools


def concurrency_key_value(template, context, trigger=None):
    """The rendered key; a long one is shortened to a digest so that any value fits the pool key."""
    scope = {"context": context, "trigger": trigger or {}, "instance": {}, "steps": {}, "nodes": {}, "shared": {}}
    try:
        value = templating.render_value(template, scope)
    except templating.TemplateError as exc:
        raise ConcurrencyKeyError(f"concurrency.key: {exc}") from None
    value = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if value == "":
        raise ConcurrencyKeyError(f"concurrency.key: '{template}' rendered an empty key from this context")
    if len(value) > MAX_KEY_VALUE_LENGTH:
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def admission_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMISSION_LOCK])


def pools_read(pools):
    """{key: [in_use, limit]} of `pools`, creating missing rows and updating limits to the ones in
    force (a re-applied max_concurrent holds for the next admission). Under the admission lock."""
    now = timezone.now()
    ConcurrencyPool.objects.bulk_create(
        [ConcurrencyPool(key=p.key, limit=p.limit, updated_at=now) for p in pools],
        update_conflicts=True, unique_fields=["key"], update_fields=["limit"])
    rows = ConcurrencyPool.objects.filter(key__in=[p.key for p in pools]).values_list("key", "in_use", "limit")
    return {key: [in_use, limit] for key, in_use, limit in rows}


def first_full(pools, counts):
    """The first pool with no free slot, or None."""
    return next((p for p in pools if counts[p.key][0] >= counts[p.key][1]), None)


def slots_take(keys, counts=None):
    ConcurrencyPool.objects.filter(key__in=keys).update(in_use=F("in_use") + 1, updated_at=timezone.now())
    for key in keys if counts is not None else ():
        counts[key][0] += 1


def slots_give_back(keys):
    ConcurrencyPool.objects.filter(key__in=keys, in_use__gt=0).update(in_use=F("in_use") - 1,
                                                                     updated_at=timezone.now())


def queued_reason(pool, counts):
    in_use, limit = counts[pool.key]
    reason = {"limit": pool.limit_name, "key": pool.key, "max": limit}
    if pool.limit_name == "concurrency":
        reason["value"] = pool.key.split(":", 2)[2]
    return reason


def waiting_for(keys, *, batch=HAND_ON_BATCH, limit=HAND_ON_SCAN):
    """Queued instances that need any of `keys`, highest priority then oldest, locked a few at a time
    (a freed slot usually needs one); one another transaction holds (being terminated, say) is
    skipped, and one handed over by the caller is `queued` no more when the next batch is read."""
    queued = (WorkflowInstance.objects.select_for_update(skip_locked=True, of=("self",))
              .filter(status=I.QUEUED, holds_slots=False, slot_keys__overlap=list(keys))
              .order_by("-priority", "created_at"))
    seen = set()
    while len(seen) < limit:
        rows = [row for row in queued.exclude(id__in=seen)[:batch]]
        if not rows:
            return
        for row in rows:
            seen.add(row.id)
            yield row


def oldest_holders(key, count):
    """Running instances holding `key`, oldest first: what `cancel_in_progress` stops."""
    return list(WorkflowInstance.objects.filter(holds_slots=True, slot_keys__contains=[key])
                .exclude(status__in=INSTANCE_TERMINAL).order_by("created_at").values_list("id", flat=True)[:count])


def pool_in_use(key):
    return ConcurrencyPool.objects.filter(key=key).values_list("in_use", "limit").first() or (0, 0)


def pools_recount():
    """Under the admission lock: give back the slots of instances that ended without giving them
    back, set every pool's count to the instances that hold it, and return the pools with room.
    (A count can only be wrong after a status was changed outside the engine, e.g. by hand.)"""
    # An instance locked by another transaction is being ended right now: that transaction gives
    # its slots back after this one, under the lock.
    ended = list(WorkflowInstance.objects.select_for_update(skip_locked=True)
                 .filter(holds_slots=True, status__in=INSTANCE_TERMINAL).values_list("id", flat=True))
    freed = WorkflowInstance.objects.filter(id__in=ended).update(holds_slots=False)
    held = {}
    for keys in (WorkflowInstance.objects.filter(holds_slots=True).exclude(status__in=INSTANCE_TERMINAL)
                 .values_list("slot_keys", flat=True)):
        for key in keys:
            held[key] = held.get(key, 0) + 1
    corrected = 0
    for pool in ConcurrencyPool.objects.all():
        if pool.in_use != held.get(pool.key, 0):
            ConcurrencyPool.objects.filter(key=pool.key).update(in_use=held.get(pool.key, 0))
            corrected += 1
    return freed, corrected


def pools_with_room():
    return list(ConcurrencyPool.objects.filter(in_use__lt=F("limit")).values_list("key", flat=True))


def queue_has_waiting():
    """Cheap check (the partial queue index) before the sweep takes the lock."""
    return WorkflowInstance.objects.filter(status=I.QUEUED, holds_slots=False).exclude(slot_keys=[]).exists()


def idle_key_pools_prune(*, older_than_seconds=3600):
    """Per-key pools come and go with their keys (one per repository, say): drop idle ones."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    waiting = WorkflowInstance.objects.filter(status=I.QUEUED).values_list("slot_keys", flat=True)
    needed = {key for keys in waiting for key in keys}
    idle = ConcurrencyPool.objects.filter(Q(key__startswith="key:"), in_use=0, updated_at__lt=cutoff)
    return idle.exclude(key__in=needed).delete()[0]
