"""Triggers of a workflow (DESIGN §6.2) and a blueprint's `coordination.auto_spawn` rules.

Shapes, cron expressions, time zones, filters, debounce windows and webhook paths are
checked here; which workflows exist and which webhook paths are taken is checked in
`validate` and by the blueprint compiler.
"""
import re
import zoneinfo

from orchestration import templating
from orchestration.events.matching import MAX_ALTERNATIVES, alternatives

from .checker import Checker, describe_value

TRIGGER_TYPES = ("manual", "event", "scheduled", "webhook")
OVERLAP_POLICIES = ("allow", "skip", "buffer_one", "cancel_other")
# A filter key is a dotted path into the payload: `repo`, `pr.labels`, `items.0.sku`.
FILTER_PATH_RE = re.compile(r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$")
MAX_WEBHOOK_PATH = 200
WEBHOOK_PATH_RE = re.compile(r"^(/(?!\.{1,2}(?:/|$))[A-Za-z0-9._~-]+)+$")  # no '.' or '..' segments
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,100}$")
# What a debounce key template may read: the event (`trigger`) and the would-be context.
DEBOUNCE_NAMESPACES = frozenset({"trigger", "context"})
AUTO_SPAWN_FIELDS = {"on_event", "spawn", "priority", "filters", "context", "debounce"}

_TRIGGER_FIELDS = {
    "manual": {"type"},
    "event": {"type", "event", "filters", "context", "debounce"},
    "scheduled": {"type", "cron", "timezone", "context", "overlap"},
    "webhook": {"type", "path", "secret", "context"},
}


def normalize_triggers(c, raw):
    """The workflow's triggers; the seed-004 `trigger: {event, filters}` / `{schedule}` form too."""
    if "trigger" in raw and "triggers" in raw:
        c.error("trigger", "give either 'trigger' or 'triggers', not both")
    if "trigger" in raw:
        single = c.get("trigger", dict)
        if single is None:
            return []
        if "schedule" in single:
            trigger = _trigger(c.sink, {"type": "scheduled", **single}, "trigger", cron_key="schedule")
        else:
            trigger = _trigger(c.sink, {"type": "event", **single}, "trigger")
        return [trigger] if trigger else []
    triggers = c.get("triggers", list, default=[])
    return [t for t in (_trigger(c.sink, t, f"triggers[{i}]") for i, t in enumerate(triggers)) if t]


def _trigger(sink, raw, where, *, cron_key="cron"):
    if not isinstance(raw, dict):
        sink.error(f"must be a mapping, got {describe_value(raw)}", field=where)
        return None
    t = Checker(sink, raw, prefix=f"{where}.")
    kind = t.choice("type", TRIGGER_TYPES)
    if kind is None:
        if "type" not in raw:
            t.error("type", "is required")
        return None
    allowed = set(_TRIGGER_FIELDS[kind])
    if kind == "scheduled":
        allowed = (allowed - {"cron"}) | {cron_key}
    t.unknown_fields(allowed)
    trigger = {"type": kind}
    if kind == "event":
        trigger["event"] = t.event_name("event", required_message="is required for an event trigger")
        trigger["filters"] = normalize_filters(t, "filters")
        trigger["context"] = t.get("context", dict, default={})
        trigger["debounce"] = normalize_debounce(t, "debounce")
    elif kind == "scheduled":
        trigger["cron"] = t.get(cron_key, str)
        trigger["timezone"] = t.get("timezone", str, default="UTC")
        trigger["context"] = t.get("context", dict, default={})
        trigger["overlap"] = t.choice("overlap", OVERLAP_POLICIES, default="allow")
        if not trigger["cron"]:
            t.error(cron_key, "is required for a scheduled trigger")
        else:
            problem = cron_problem(trigger["cron"])
            if problem:
                t.error(cron_key, problem)
        if not known_timezone(trigger["timezone"]):
            t.error("timezone", f"unknown time zone '{trigger['timezone']}' (use an IANA name such as UTC)")
    elif kind == "webhook":
        path = t.get("path", str)
        if not path:
            t.error("path", "is required for a webhook trigger, e.g. /support/ticket")
        elif len(path) > MAX_WEBHOOK_PATH:
            t.error("path", f"is {len(path)} characters long; at most {MAX_WEBHOOK_PATH}")
            path = None
        elif not WEBHOOK_PATH_RE.match(path):
            t.error("path", f"'{path}' must start with '/' and hold only letters, digits and . _ ~ - "
                            "between single slashes (no '.' or '..' segments), e.g. /support/ticket")
            path = None
        trigger["path"] = path
        secret = t.get("secret", str, default="WEBHOOK")
        if not SECRET_NAME_RE.match(secret):
            t.error("secret", f"'{secret}' must be a secret name (letters, digits, _): the key is read from "
                              f"DAC_SECRET_<NAME>")
        trigger["secret"] = secret
        trigger["context"] = t.get("context", dict, default={})
    return trigger


def normalize_filters(c, name):
    """{dotted.path: glob | [any of] | value}; a mapping as a value is refused (say which key)."""
    filters = c.get(name, dict, default={})
    for path, expected in filters.items():
        field = f"{name}.{path}"
        if not isinstance(path, str) or not FILTER_PATH_RE.match(path):
            c.error(field, f"'{path}' is not a dotted path into the payload (e.g. 'repo' or 'pr.author')")
        elif isinstance(expected, dict):
            c.error(field, "a filter value is a glob string, a list (any of) or a value to equal, not a mapping "
                           "(use a dotted path for nested fields)")
        elif isinstance(expected, list) and any(isinstance(v, (dict, list)) for v in expected):
            c.error(field, "a list filter holds plain values (any of them matches), not mappings or lists")
        elif any(isinstance(v, str) and alternatives(v) > MAX_ALTERNATIVES
                 for v in (expected if isinstance(expected, list) else [expected])):
            c.error(field, f"a glob may offer at most {MAX_ALTERNATIVES} {{a,b}} alternatives")
    return filters


def normalize_debounce(c, name):
    """{key: TEMPLATE, seconds: N} or None."""
    value = c.get(name, dict)
    if value is None:
        return None
    d = Checker(c.sink, value, step=c.step, prefix=c.field_name(name) + ".")
    d.unknown_fields({"key", "seconds"})
    seconds = d.duration("seconds", unit_seconds=1)
    if seconds is None and "seconds" not in value:
        d.error("seconds", "is required: how long after the last event of a burst to start")
    key = d.get("key", str, default="")
    if templating.is_template(key):
        try:
            names, _ = templating.references(key)
        except templating.TemplateError as exc:
            d.error("key", str(exc))
        else:
            unknown = sorted(names - DEBOUNCE_NAMESPACES)
            if unknown:
                d.error("key", f"template uses unknown name '{unknown[0]}' (a debounce key reads 'trigger', "
                               "the event, and 'context')")
    return {"key": key, "seconds": seconds}


def normalize_auto_spawn(sink, coordination, known_workflows):
    """`coordination.auto_spawn: [{on_event, spawn, priority, filters, context, debounce}]`."""
    rules = Checker(sink, coordination, prefix="coordination.").get("auto_spawn", list, default=[])
    normalized = []
    for i, raw in enumerate(rules):
        where = f"coordination.auto_spawn[{i}]"
        if not isinstance(raw, dict):
            sink.error(f"must be a mapping, got {describe_value(raw)}", field=where)
            continue
        r = Checker(sink, raw, prefix=f"{where}.")
        r.unknown_fields(AUTO_SPAWN_FIELDS)
        rule = {
            "on_event": r.event_name("on_event", required_message="is required: the event type that starts the "
                                                                  "workflow"),
            "spawn": r.get("spawn", str),
            "priority": r.priority("priority"),
            "filters": normalize_filters(r, "filters"),
            "context": r.get("context", dict, default={}),
            "debounce": normalize_debounce(r, "debounce"),
        }
        if not rule["spawn"]:
            r.error("spawn", "is required: the workflow to start")
        elif rule["spawn"] not in known_workflows:
            r.error("spawn", f"unknown workflow '{rule['spawn']}'")
        normalized.append(rule)
    return normalized


CRON_FIELDS = (("minute", "minute"), ("hour", "hour"), ("day_of_month", "day of month"),
               ("month_of_year", "month"), ("day_of_week", "weekday"))


def cron_problem(cron):
    """Why `cron` is not a five-field expression celery beat can run, or None."""
    from celery.schedules import crontab

    fields = cron.split()
    if len(fields) != len(CRON_FIELDS):
        return f"cron '{cron}' must have 5 fields (minute hour day month weekday), got {len(fields)}"
    for (key, label), value in zip(CRON_FIELDS, fields, strict=True):
        try:
            crontab(**{key: value})
        except Exception as exc:  # noqa: BLE001 - celery raises ValueError or its own ParseException
            return f"cron '{cron}' cannot be parsed: the {label} field '{value}' is invalid ({exc})"
    return None


def known_timezone(name):
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
