"""`dac emit` and `dac events`."""
from django.core.management.base import CommandError

from .common import actor, as_json, json_object, priority_option

# The event services and selectors (which import the engine) are imported by the verbs.


def add_parsers(verbs):
    p = verbs.add_parser("emit", help="publish an event")
    p.add_argument("event_type", metavar="EVENT")
    p.add_argument("--payload", default="{}", help="the payload, a JSON object")
    p.add_argument("--priority", default=None, help="low|normal|high|critical or 0..9")
    p.add_argument("--correlation-id", dest="correlation_id", default=None)
    p.add_argument("--ttl", type=int, default=None, help="seconds after which it starts nothing")
    p.add_argument("--as", dest="as_user", default=None)
    p.add_argument("--json", action="store_true")
    p = verbs.add_parser("events", help="event history, newest first")
    p.add_argument("--type", dest="event_type", default=None)
    p.add_argument("--correlation-id", dest="correlation_id", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")


def do_emit(cmd, event_type, payload, priority, correlation_id, ttl, as_user, json, **_):
    from orchestration.events import selectors, services

    raw = {"event_type": event_type, "payload": json_object(payload, "--payload")}
    if priority is not None:
        raw["priority"] = priority_option(priority)
    if correlation_id is not None:
        raw["correlation_id"] = correlation_id
    if ttl is not None:
        raw["ttl_seconds"] = ttl
    (event,) = services.events_publish(events=[raw], actor=actor(as_user))
    published = selectors.published_as_dict(event)
    cmd.out(as_json(published) if json else f"published {event.event_type} {event.event_id} "
                                            f"(correlation {event.correlation_id})")


def do_events(cmd, event_type, correlation_id, limit, json, **_):
    from orchestration.events import selectors

    if limit < 1:
        raise CommandError("--limit must be at least 1")
    events = selectors.events_as_dicts(selectors.event_list(type=event_type, correlation_id=correlation_id)[:limit])
    if json:
        cmd.out(as_json({"events": events}))
        return
    for e in events:
        matched = e["matched"]
        note = " expired" if e["expired"] else ""
        cmd.out(f"{e['timestamp']}  {e['event_type']:<30} {e['event_id']}  corr={e['correlation_id']}  "
                f"started={len(matched['started'])} resumed={len(matched['resumed'])}{note}")
