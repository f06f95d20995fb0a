"""Reacting to published events (DESIGN §6.1, §6.2): start what their triggers and auto_spawn
rules start, feed debounce windows, resume waiting steps. Runs on workers, one task per batch.

Exactly once: a start records an `EventMatch` unique per (event, trigger) in the start's own
transaction, and a resume is a conditional update; a reaction delivered twice finds both done.
"""
import logging
from collections import defaultdict

from django.db import IntegrityError, transaction
from django.utils import timezone

from dacproject.ids import uuid7
from orchestration import engine

from . import debounce, waits
from .matching import payload_matches
from .models import Event, EventMatch, MatchKind, Trigger, TriggerKind

logger = logging.getLogger(__name__)


def events_react(*, event_ids):
    """React to each event not reacted to yet, higher priority first. Returns how many it handled."""
    events = list(Event.objects.filter(event_id__in=event_ids, reacted_at__isnull=True)
                  .order_by("-priority", "timestamp"))
    if not events:
        return 0
    triggers = defaultdict(list)
    for trigger in (Trigger.objects.filter(kind=TriggerKind.EVENT, event_type__in={e.event_type for e in events})
                    .select_related("workflow__latest_version")
                    .defer("workflow__latest_version__spec", "workflow__latest_version__source").order_by("key")):
        triggers[trigger.event_type].append(trigger)
    open_waits = waits.open_waits_for(events)
    for event in events:
        now = timezone.now()
        if event.is_expired(now):  # an expired event starts and resumes nothing
            continue
        for trigger in triggers[event.event_type]:
            if not _listens(trigger, event):
                continue
            if trigger.spec.get("debounce"):
                debounce.debounce_note(trigger, event)
            else:
                trigger_start(trigger, event)
        for wait in open_waits.get(event.event_type, []):
            if waits.event_fits(wait, event, now):
                waits.wait_resume(wait_id=wait.id, event_id=event.event_id)
    # One write for the batch: a task that dies before it repeats the batch, which starts and
    # resumes nothing twice.
    Event.objects.filter(event_id__in=[e.event_id for e in events]).update(reacted_at=timezone.now())
    return len(events)


def _listens(trigger, event):
    """A trigger reacts to events published since it was registered whose payload fits its filters."""
    return event.timestamp >= trigger.created_at and payload_matches(trigger.spec.get("filters"), event.payload)


def trigger_namespace(event, trigger):
    """The started instance's `trigger` (DESIGN §2): the event that started it."""
    return {"type": "event", "event_id": str(event.event_id), "event_type": event.event_type,
            "correlation_id": event.correlation_id or str(event.event_id), "payload": event.payload,
            "source": trigger.spec.get("source", "trigger"), "trigger": trigger.key}


def trigger_context(event, trigger):
    """The payload merged over the trigger's `context`."""
    payload = event.payload if isinstance(event.payload, dict) else {"payload": event.payload}
    return {**(trigger.spec.get("context") or {}), **payload}


def trigger_start(trigger, event):
    """Start the trigger's workflow for `event`, once; returns the instance or None.

    The match row goes first, naming the instance about to be created (foreign keys are checked
    at commit): a repeated reaction hits the unique (event, trigger) at once and starts nothing."""
    instance_id = uuid7()
    try:
        with transaction.atomic():
            EventMatch.objects.create(event=event, kind=MatchKind.STARTED, trigger_key=trigger.key,
                                      instance_id=instance_id)
            origin = engine.Origin(trigger=trigger_namespace(event, trigger), trigger_key=trigger.key,
                                   correlation_id=event.correlation_id or str(event.event_id), instance_id=instance_id)
            # No savepoint of its own: a failed start undoes this whole transaction, match row and all.
            return engine.instance_start(workflow=trigger.workflow.key, context=trigger_context(event, trigger),
                                         actor=f"trigger:{trigger.key}", priority=trigger.spec.get("priority"),
                                         origin=origin, definition=trigger.workflow, savepoint=False)
    except IntegrityError:
        return None  # this event started this trigger already (a repeated or concurrent reaction)
    except engine.EngineError as exc:
        logger.warning("event %s (%s) could not start '%s' through %s: %s", event.event_id, event.event_type,
                       trigger.workflow.key, trigger.key, exc.message)
        return None
