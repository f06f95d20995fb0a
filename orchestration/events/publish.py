"""Publishing: an event is stored in the publisher's transaction, and only after that commits
is a reaction sent, and only when a trigger or a parked `wait_for` step listens to its type.

Which types are listened to is read from PostgreSQL and cached per process under a version
number kept in Redis: whoever adds a listener (an apply, a parked wait) commits it, then bumps
the version; a publisher commits its event, then reads the version, and re-reads PostgreSQL
when it changed (or Redis cannot say).

Why this ordering closes the lost-wakeup race with `wait_for` (DESIGN §6.4): the publisher
commits the event, then reads the version; the parking task commits its wait, bumps the
version, then reads the events (`orchestration.events.waits`). Redis orders the bump and the
read: if the bump came first, the publisher re-reads PostgreSQL after the wait's commit and
sees it; if the read came first, the parking task's look at the events comes after the
publisher's commit and sees the event. Either way one side finds the match, and the resume
is a conditional update, so finding it twice resumes once. If the bump fails, the wait is
left unchecked and the reconciler looks again once Redis is back.
"""
import logging
import threading
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from dacproject.ids import uuid7
from dacproject.redis_client import RedisError
from dacproject.redis_client import client as redis_client
from orchestration.gathering import gathered, gathering

from .models import Event, EventWait, Trigger, TriggerKind, WaitStatus

logger = logging.getLogger(__name__)

DEFAULT_PRIORITY = 5
# Events per reaction task: a bulk publish of 1,000 becomes ten tasks that workers share.
REACTION_BATCH = 100


@dataclass
class Draft:
    """An event to publish (DESIGN §6.1); `event_id` makes a publication idempotent."""

    event_type: str
    payload: dict = field(default_factory=dict)
    source_workflow: str = ""
    source_instance_id: object = None
    priority: int = DEFAULT_PRIORITY
    correlation_id: str = ""
    ttl_seconds: int | None = None
    event_id: uuid.UUID | None = None

    def to_event(self, now):
        event_id = self.event_id or uuid7()
        return Event(event_id=event_id, event_type=self.event_type, payload=self.payload,
                     source_workflow=self.source_workflow or "", source_instance_id=self.source_instance_id,
                     priority=self.priority, correlation_id=self.correlation_id or str(event_id),
                     ttl_seconds=self.ttl_seconds, timestamp=now)


def publish(drafts, *, ignore_conflicts=False):
    """Store the events now (in the caller's transaction); react after it commits.

    With `ignore_conflicts`, an event whose id exists already is skipped: engine notices with a
    derived id (a child's end, say) are published once however often their task runs.
    """
    if not drafts:
        return []
    now = timezone.now()
    events = [d.to_event(now) for d in drafts]
    Event.objects.bulk_create(events, ignore_conflicts=ignore_conflicts)
    react_on_commit(events)
    return events


def react_on_commit(events):
    """After the current transaction commits, send reactions for these stored events if listened
    (or, inside `reactions_deferred`, when that block ends)."""
    entries = [(e.event_id, e.event_type, e.priority) for e in events]
    transaction.on_commit(lambda: _react_or_defer(entries))


_deferred = threading.local()


def reactions_deferred():
    """Collect the after-commit reaction checks of a block and make them once, at its end: a task
    that runs a chain of steps inline checks once, not once per step. Checking later than the
    commit keeps every guarantee (the check only has to follow it); a worker that dies first
    leaves events the reconciler resends."""
    return gathering(_deferred, react_if_listened)


def _react_or_defer(entries):
    buffer = gathered(_deferred)
    if buffer is None:
        react_if_listened(entries)
    else:
        buffer.extend(entries)


def listened_types(types=None):
    """The event types (among `types`, or all) that an event trigger or an open wait listens to."""
    triggers = Trigger.objects.filter(kind=TriggerKind.EVENT)
    waits = EventWait.objects.filter(status=WaitStatus.WAITING)
    if types is not None:
        triggers, waits = triggers.filter(event_type__in=list(types)), waits.filter(event_type__in=list(types))
    return set(triggers.values_list("event_type", flat=True).union(waits.values_list("event_type", flat=True)))


LISTENERS_VERSION_KEY = "dac:events:listeners-version"
_known = {"version": None, "types": frozenset()}


def listeners_changed():
    """Called after a new listener committed: publishers re-read the listened types. False when
    Redis could not be told (the caller then relies on the reconciler)."""
    try:
        redis_client().incr(LISTENERS_VERSION_KEY)
        return True
    except RedisError:
        logger.warning("could not signal a listener change; the reconciler will catch up")
        return False


def _listened_now(types):
    """The listened types among `types`: from the per-process cache while its version is current."""
    try:
        version = redis_client().get(LISTENERS_VERSION_KEY)
    except RedisError:
        version = None
    if version is None:  # nothing to compare with: ask PostgreSQL
        return listened_types(types)
    if version != _known["version"]:
        # The version is read before the table: a change after this read bumps it again.
        _known["types"], _known["version"] = frozenset(listened_types()), version
    return _known["types"] & set(types)


def react_if_listened(entries):
    """After commit: send reactions for the events something listens to. A failure here loses
    nothing: the reconciler finds listened-to events that never reacted and sends them again."""
    try:
        listened = _listened_now({t for _, t, _ in entries})
        wanted = [(event_id, priority) for event_id, t, priority in entries if t in listened]
        if wanted:
            send_reactions(wanted)
    except Exception:  # noqa: BLE001 - the publish is committed; the reconciler resends
        logger.exception("could not send reactions for %d event(s); the reconciler will", len(entries))


def send_reactions(events):
    """`events`: [(event_id, priority)]. Higher priority first, in batches, each at its priority."""
    from orchestration.canvas import celery_priority

    from . import tasks

    ordered = sorted(events, key=lambda e: -e[1])
    for start in range(0, len(ordered), REACTION_BATCH):
        batch = ordered[start:start + REACTION_BATCH]
        tasks.react.apply_async(args=([str(event_id) for event_id, _ in batch],),
                                priority=celery_priority(batch[0][1]))
