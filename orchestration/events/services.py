"""Writes of the event bus for people and clients (`dac emit`, `POST /api/v1/events/`), the sweep
and the reconciler's share of the bus."""
import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dacproject.nul import UNSTORABLE, unstorable_path
from governance.audit import audit_record
from orchestration.engine import InvalidRequest
from registry.spec.checker import parse_priority

from . import debounce, schedules, waits
from .models import Event, IdempotencyRecord
from .publish import DEFAULT_PRIORITY, Draft, listened_types, publish, send_reactions

MAX_BULK = 1000
EVENT_TYPE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$")
EVENT_FIELDS = {"event_type", "payload", "priority", "correlation_id", "ttl_seconds"}
IDEMPOTENCY_TTL = timezone.timedelta(hours=24)


def _draft(raw, where):
    """One event object from a client -> Draft; problems as {field path: message}."""
    if not isinstance(raw, dict):
        return None, {where or "(body)": "an event is a JSON object with at least 'event_type'"}
    problems = {}

    def problem(name, message):
        problems[f"{where}.{name}" if where else name] = message

    for name in sorted(set(raw) - EVENT_FIELDS):
        problem(name, f"unknown field (allowed: {', '.join(sorted(EVENT_FIELDS))})")
    event_type = raw.get("event_type")
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.match(event_type):
        problem("event_type", "is required: 1-200 characters of letters, digits and _ . : / - (e.g. pr_created)")
    payload = raw.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        problem("payload", "must be a JSON object")
    elif unstorable_path(payload, "payload"):
        problem("payload", f"{unstorable_path(payload, 'payload')} {UNSTORABLE}")
    priority = raw.get("priority")
    if priority is not None and parse_priority(priority) is None:
        problem("priority", f"must be low, normal, high, critical or 0..9, got {priority!r}")
    correlation_id = raw.get("correlation_id") or ""
    if not isinstance(correlation_id, str) or len(correlation_id) > 200 or "\x00" in correlation_id:
        problem("correlation_id", "must be a string of at most 200 characters")
    ttl = raw.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= 2**31 - 1):
        problem("ttl_seconds", "must be a positive whole number of seconds")
    if problems:
        return None, problems
    return Draft(event_type, payload, priority=DEFAULT_PRIORITY if priority is None else parse_priority(priority),
                 correlation_id=correlation_id, ttl_seconds=ttl), {}


def events_publish(*, events, actor, bulk=False):
    """Validate every event, then store them all in one transaction (or none). Returns the Events."""
    if not isinstance(events, list) or not events:
        raise InvalidRequest("send one event object, or a non-empty list of them")
    if len(events) > MAX_BULK:
        raise InvalidRequest(f"at most {MAX_BULK} events per request, got {len(events)}")
    drafts, problems = [], {}
    for index, raw in enumerate(events):
        draft, found = _draft(raw, f"[{index}]" if bulk else "")
        problems.update(found)
        drafts.append(draft)
    if problems:
        first = next(iter(problems.items()))
        raise InvalidRequest(f"invalid event: {first[0]}: {first[1]}" if len(problems) == 1
                             else f"{len(problems)} problems in the events; nothing was published",
                             details={"fields": problems})
    with transaction.atomic():
        published = publish(drafts)
        types = sorted({d.event_type for d in drafts})
        audit_record(actor=actor, verb="event.publish", target_type="event",
                     target_id=published[0].event_id if len(published) == 1 else f"{len(published)} events",
                     details={"count": len(published), "event_types": types[:20]})
    return published


def events_sweep():
    """Time out waits, fire due debounce windows, forget idempotency keys older than 24 h."""
    timed_out = waits.waits_time_out()
    fired = debounce.debounce_due()
    forgotten, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - IDEMPOTENCY_TTL).delete()
    return {"waits_timed_out": timed_out, "debounced_starts": fired, "idempotency_keys_forgotten": forgotten}


def events_reconcile(*, limit=1000):
    """Reactions lost between a commit and its message, parked waits whose event came while no
    one looked, and buffered schedule runs whose release was lost."""
    now = timezone.now()
    settle = timezone.timedelta(seconds=settings.DAC_RECONCILE_READY_AFTER_SECONDS)
    window = timezone.timedelta(seconds=settings.DAC_EVENT_RECONCILE_WINDOW_SECONDS)
    lost = list(Event.objects.filter(event_type__in=listened_types(), reacted_at__isnull=True,
                                     timestamp__lt=now - settle, timestamp__gt=now - window)
                .values_list("event_id", "priority")[:limit])
    if lost:
        send_reactions(lost)
    resumed = sum(1 for wait in waits.unchecked_waits(before=now - settle, limit=limit) if waits.wait_check(wait))
    released = 0
    for name in schedules.buffered_schedules():
        if schedules.schedule_release(name=name):
            released += 1
    return {"reactions_resent": len(lost), "waits_resumed": resumed, "schedules_released": released}
