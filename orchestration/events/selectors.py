"""Reads of the event bus: history with what each event matched (DESIGN §6.1)."""
import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dacproject.ids import as_uuid

from .models import Event, EventMatch, MatchKind


def event_list(*, type=None, correlation_id=None, source_instance=None, since=None):
    """Newest first. `since`: an ISO-8601 time (events at or after it)."""
    qs = Event.objects.all()
    if type:
        qs = qs.filter(event_type=type)
    if correlation_id:
        qs = qs.filter(correlation_id=correlation_id)
    if source_instance:
        instance_id = as_uuid(source_instance)
        qs = qs.filter(source_instance_id=instance_id) if instance_id else qs.none()
    if since:
        try:
            moment = parse_datetime(since) if isinstance(since, str) else since
        except ValueError:  # well formed, but no such date (month 13, say)
            moment = None
        if moment is None:
            from orchestration.engine import InvalidRequest  # here: importing the engine costs `dac events` start-up

            raise InvalidRequest(f"since must be an ISO-8601 time such as 2026-11-29T10:00:00Z, got {since!r}",
                                 details={"field": "since"})
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, datetime.UTC)
        qs = qs.filter(timestamp__gte=moment)
    return qs.order_by("-timestamp")


def events_as_dicts(events):
    """The §6.1 shape of each event, with `matched` and `expired`, in two queries."""
    events = list(events)
    matched = {e.event_id: {"started": [], "resumed": []} for e in events}
    for match in EventMatch.objects.filter(event_id__in=list(matched)).order_by("id"):
        if match.kind == MatchKind.STARTED:
            matched[match.event_id]["started"].append(str(match.instance_id))
        else:
            matched[match.event_id]["resumed"].append({"instance": str(match.instance_id), "step": match.step_id})
    now = timezone.now()
    return [_as_dict(e, matched[e.event_id], now) for e in events]


def _as_dict(event, matched, now):
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "source_workflow": event.source_workflow or None,
        "source_instance": str(event.source_instance_id) if event.source_instance_id else None,
        "payload": event.payload,
        "priority": event.priority,
        "correlation_id": event.correlation_id,
        "ttl_seconds": event.ttl_seconds,
        "timestamp": event.timestamp.isoformat(),
        "matched": matched,
        "expired": event.is_expired(now),
    }


def published_as_dict(event):
    """What `dac emit --json` and a POST answer for each published event."""
    return {"event_id": str(event.event_id), "event_type": event.event_type, "correlation_id": event.correlation_id,
            "timestamp": event.timestamp.isoformat()}
