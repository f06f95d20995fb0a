"""Turn a loaded workflow document (DESIGN §2, either dialect) into the canonical spec.

Shapes and types are checked here, and the cron expressions and time zones of triggers (whose
field paths are known only here); references between steps, actions and templates are
checked in `validate`.
"""
import difflib
import re
import zoneinfo

WORKFLOW_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
STEP_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
WORKFLOW_TYPES = ("development", "content", "data", "operations", "support", "governance")
PRIORITIES = {"low": 2, "normal": 5, "high": 7, "critical": 9}
BACKOFFS = ("exponential", "linear", "fixed")
TIMEOUT_ACTIONS = ("approve", "reject", "escalate")
SPAWN_STRATEGIES = ("wait", "callback", "fire_and_forget", "supervised")
TRIGGER_TYPES = ("manual", "event", "scheduled", "webhook")

WORKFLOW_FIELDS = {
    "id", "name", "type", "description", "inputs", "outputs", "triggers", "trigger", "emits",
    "max_concurrent", "timeout_minutes", "priority", "owner", "tags", "budget", "result",
    "steps", "nodes",
}
STEP_FIELDS = {
    "id", "name", "description", "action", "agent", "with", "inputs", "params", "depends_on",
    "dependsOn", "join", "when", "condition", "foreach", "max_parallel", "retry",
    "timeout_seconds", "on_error", "error_strategy", "approval", "approvalRequired",
    "compensate", "spawn", "wait_for", "emit", "output_schema", "queue", "rate_limit",
}
STEP_ALIASES = {
    "with": ("with", "inputs", "params"),
    "depends_on": ("depends_on", "dependsOn"),
    "when": ("when", "condition"),
    "on_error": ("on_error", "error_strategy"),
    "approval": ("approval", "approvalRequired"),
}
DEFAULT_RETRY = {"max_attempts": 1, "backoff": "exponential", "base_seconds": 1.0, "max_seconds": 300.0, "jitter": True}


class Checker:
    """Typed field access that records a precise error instead of raising."""

    def __init__(self, sink, data, *, step=None, prefix=""):
        self.sink = sink
        self.data = data
        self.step = step
        self.prefix = prefix

    def field_name(self, name):
        return f"{self.prefix}{name}"

    def error(self, name, message):
        self.sink.error(message, step=self.step, field=self.field_name(name))

    def unknown_fields(self, allowed):
        for key in self.data:
            if key in allowed or (isinstance(key, str) and key.startswith("x-")):
                continue
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
            self.error(str(key), f"unknown field{suffix}")

    def get(self, name, types, *, default=None, type_name=None):
        if name not in self.data or self.data[name] is None:
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in _as_tuple(types):
            self.error(name, f"must be {type_name or _describe(types)}, got a boolean")
            return default
        if not isinstance(value, types):
            self.error(name, f"must be {type_name or _describe(types)}, got {_describe_value(value)}")
            return default
        return value

    def string_list(self, name, *, allow_single=False):
        value = self.data.get(name)
        if value is None:
            return []
        if allow_single and isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(name, f"must be a list of strings, got {_describe_value(value)}")
            return []
        return list(value)

    def positive_number(self, name, *, integer=False, minimum=0, default=None):
        types = (int,) if integer else (int, float)
        value = self.get(name, types, default=default, type_name="an integer" if integer else "a number")
        if value is not None and value is not default and value <= minimum:
            self.error(name, f"must be greater than {minimum}, got {value}")
            return default
        return value

    def choice(self, name, choices, *, default=None):
        value = self.get(name, str, default=default)
        if value is not default and value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}, got '{value}'")
            return default
        return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


_TYPE_NAMES = {
    str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list", dict: "a mapping",
}


def _describe(types):
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in _as_tuple(types))


def _describe_value(value):
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def normalize_workflow(raw, sink):
    """Return the canonical spec of one workflow document; errors go to `sink`."""
    if not isinstance(raw, dict):
        sink.error(f"a workflow must be a mapping, got {_describe_value(raw)}")
        return None
    c = Checker(sink, raw)
    c.unknown_fields(WORKFLOW_FIELDS)
    key = c.get("id", str) or c.get("name", str)
    if key is None:
        c.error("id", "is required (or 'name' in the seed-004 dialect)")
    elif not WORKFLOW_ID_RE.match(key):
        c.error("id", f"'{key}' must match {WORKFLOW_ID_RE.pattern}")
    spec = {
        "id": key,
        "name": c.get("name", str) or key,
        "type": c.choice("type", WORKFLOW_TYPES, default=""),
        "description": c.get("description", str, default=""),
        "inputs": c.string_list("inputs"),
        "outputs": c.string_list("outputs"),
        "emits": c.string_list("emits"),
        "tags": c.string_list("tags"),
        "owner": c.get("owner", str, default=""),
        "max_concurrent": c.positive_number("max_concurrent", integer=True),
        "timeout_minutes": c.positive_number("timeout_minutes"),
        "priority": _priority(c),
        "budget": _budget(c),
        "result": raw.get("result"),
        "triggers": _triggers(c, raw),
    }
    steps_key = "steps" if "steps" in raw else "nodes"
    raw_steps = raw.get(steps_key)
    if raw_steps is None:
        spec["steps"] = None
    elif not isinstance(raw_steps, list):
        c.error(steps_key, f"must be a list of steps, got {_describe_value(raw_steps)}")
        spec["steps"] = None
    else:
        spec["steps"] = [_normalize_step(sink, s, i, steps_key) for i, s in enumerate(raw_steps)]
        spec["steps"] = [s for s in spec["steps"] if s is not None]
    return spec


def _priority(c):
    value = c.data.get("priority")
    if value is None:
        return PRIORITIES["normal"]
    if isinstance(value, str) and value in PRIORITIES:
        return PRIORITIES[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return value
    c.error("priority", f"must be one of low, normal, high, critical or 0..9, got {value!r}")
    return PRIORITIES["normal"]


def _budget(c):
    budget = c.get("budget", dict)
    if budget is None:
        return None
    b = Checker(c.sink, budget, prefix="budget.")
    b.unknown_fields({"tokens", "cost_usd"})
    return {"tokens": b.positive_number("tokens", integer=True), "cost_usd": b.positive_number("cost_usd")}


def _triggers(c, raw):
    if "trigger" in raw and "triggers" in raw:
        c.error("trigger", "give either 'trigger' or 'triggers', not both")
    if "trigger" in raw:
        single = c.get("trigger", dict)
        if single is None:
            return []
        if "schedule" in single:
            trigger = _trigger(c.sink, {"type": "scheduled", **single}, "trigger", cron_key="schedule")
            return [trigger] if trigger else []
        trigger = _trigger(c.sink, {"type": "event", **single}, "trigger")
        return [trigger] if trigger else []
    triggers = c.get("triggers", list, default=[])
    return [t for t in (_trigger(c.sink, t, f"triggers[{i}]") for i, t in enumerate(triggers)) if t]


def _trigger(sink, raw, where, *, cron_key="cron"):
    if not isinstance(raw, dict):
        sink.error(f"must be a mapping, got {_describe_value(raw)}", field=where)
        return None
    t = Checker(sink, raw, prefix=f"{where}.")
    kind = t.choice("type", TRIGGER_TYPES)
    if kind is None:
        if "type" not in raw:
            t.error("type", "is required")
        return None
    allowed = {
        "manual": {"type"},
        "event": {"type", "event", "filters"},
        "scheduled": {"type", cron_key, "timezone", "context"},
        "webhook": {"type", "path", "secret_name"},
    }[kind]
    t.unknown_fields(allowed)
    trigger = {"type": kind}
    if kind == "event":
        trigger["event"] = t.get("event", str)
        trigger["filters"] = t.get("filters", dict, default={})
        if not trigger["event"]:
            t.error("event", "is required for an event trigger")
    elif kind == "scheduled":
        trigger["cron"] = t.get(cron_key, str)
        trigger["timezone"] = t.get("timezone", str, default="UTC")
        trigger["context"] = t.get("context", dict, default={})
        if not trigger["cron"]:
            t.error(cron_key, "is required for a scheduled trigger")
        else:
            problem = cron_problem(trigger["cron"])
            if problem:
                t.error(cron_key, problem)
        if not _known_timezone(trigger["timezone"]):
            t.error("timezone", f"unknown time zone '{trigger['timezone']}' (use an IANA name such as UTC)")
    elif kind == "webhook":
        path = t.get("path", str)
        if not path or not path.startswith("/"):
            t.error("path", "is required and must start with '/'")
        trigger["path"] = path
    return trigger


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


def _known_timezone(name):
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _aliased(c, canonical):
    present = [name for name in STEP_ALIASES[canonical] if name in c.data]
    if len(present) > 1:
        c.error(present[1], f"is an alias of '{present[0]}': give only one of them")
    return present[0] if present else canonical


def _normalize_step(sink, raw, index, steps_key):
    if not isinstance(raw, dict):
        sink.error(f"each step must be a mapping, got {_describe_value(raw)}", field=f"{steps_key}[{index}]")
        return None
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID_RE.match(step_id):
        sink.error(
            f"step {index + 1} needs an 'id' matching {STEP_ID_RE.pattern}, got {step_id!r}",
            field=f"{steps_key}[{index}].id",
        )
        return None
    c = Checker(sink, raw, step=step_id)
    c.unknown_fields(STEP_FIELDS)
    step = {
        "id": step_id,
        "description": c.get("description", str, default="") or c.get("name", str, default=""),
        "action": c.get("action", str),
        "agent": c.get("agent", str),
        "with": c.get(_aliased(c, "with"), dict, default={}),
        "depends_on": c.string_list(_aliased(c, "depends_on"), allow_single=True),
        "join": c.choice("join", ("all", "any"), default="all"),
        "when": _when(c),
        "foreach": c.get("foreach", (str, list)),
        "max_parallel": c.positive_number("max_parallel", integer=True),
        "retry": _retry(c),
        "timeout_seconds": c.positive_number("timeout_seconds"),
        "on_error": _on_error(c),
        "approval": _approval(c),
        "compensate": _compensate(c),
        "spawn": _spawn(c),
        "wait_for": _wait_for(c),
        "emit": _emit(c),
        "output_schema": c.get("output_schema", dict),
        "queue": c.get("queue", str, default="default"),
        "rate_limit": _rate_limit(c),
    }
    kinds = [k for k in ("action", "spawn", "wait_for") if step[k]]
    if not kinds and not step["agent"]:
        c.error("action", "is required (or 'spawn' or 'wait_for')")
    elif len(kinds) > 1:
        c.error(kinds[1], f"a step has one of 'action', 'spawn' or 'wait_for', not both '{kinds[0]}' and '{kinds[1]}'")
    if step["agent"] and not step["action"]:
        c.error("action", "an 'agent' step names the capability to use in 'action'")
    if step["max_parallel"] and step["foreach"] is None:
        c.error("max_parallel", "only applies to a 'foreach' step")
    return step


def _when(c):
    name = _aliased(c, "when")
    value = c.data.get(name)
    if value is None or isinstance(value, (str, bool)):
        return value
    c.error(name, f"must be a template string or a boolean, got {_describe_value(value)}")
    return None


def _retry(c):
    value = c.data.get("retry")
    if value is None:
        return dict(DEFAULT_RETRY)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            c.error("retry", f"must be at least 1 attempt, got {value}")
            return dict(DEFAULT_RETRY)
        return {**DEFAULT_RETRY, "max_attempts": value}
    if not isinstance(value, dict):
        c.error("retry", f"must be a number of attempts or a mapping, got {_describe_value(value)}")
        return dict(DEFAULT_RETRY)
    r = Checker(c.sink, value, step=c.step, prefix="retry.")
    r.unknown_fields(set(DEFAULT_RETRY))
    retry = {
        "max_attempts": r.positive_number("max_attempts", integer=True, default=3),
        "backoff": r.choice("backoff", BACKOFFS, default="exponential"),
        "base_seconds": float(r.get("base_seconds", (int, float), default=1.0)),
        "max_seconds": float(r.get("max_seconds", (int, float), default=300.0)),
        "jitter": r.get("jitter", bool, default=True),
    }
    for name in ("base_seconds", "max_seconds"):
        if retry[name] < 0:
            r.error(name, f"must not be negative, got {retry[name]}")
    return retry


def _on_error(c):
    name = _aliased(c, "on_error")
    value = c.data.get(name)
    if value is None:
        return "fail"
    mapping = {"fail": "fail", "continue": "continue", "continue_on_failure": "continue", "fail_workflow": "fail"}
    if isinstance(value, str) and value in mapping:
        return mapping[value]
    c.error(name, f"must be 'fail' or 'continue', got {value!r}")
    return "fail"


def _approval(c):
    name = _aliased(c, "approval")
    value = c.data.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return {"type": "", "approvers": [], "min_approvals": 1, "timeout_minutes": None,
                "timeout_action": "reject", "level": "approval"} if value else False
    if name == "approvalRequired" or not isinstance(value, dict):
        c.error(name, f"must be true, false or a mapping, got {_describe_value(value)}")
        return None
    a = Checker(c.sink, value, step=c.step, prefix="approval.")
    a.unknown_fields({"type", "approvers", "min_approvals", "timeout_minutes", "timeout_action", "level"})
    return {
        "type": a.get("type", str, default=""),
        "approvers": a.string_list("approvers"),
        "min_approvals": a.positive_number("min_approvals", integer=True, default=1),
        "timeout_minutes": a.positive_number("timeout_minutes"),
        "timeout_action": a.choice("timeout_action", TIMEOUT_ACTIONS, default="reject"),
        "level": a.get("level", str, default="approval"),
    }


def _compensate(c):
    value = c.get("compensate", dict)
    if value is None:
        return None
    k = Checker(c.sink, value, step=c.step, prefix="compensate.")
    k.unknown_fields({"action", "with"})
    action = k.get("action", str)
    if not action:
        k.error("action", "is required")
    return {"action": action, "with": k.get("with", dict, default={})}


def _spawn(c):
    value = c.get("spawn", dict)
    if value is None:
        return None
    s = Checker(c.sink, value, step=c.step, prefix="spawn.")
    s.unknown_fields({"workflow", "context", "strategy", "max_restarts"})
    workflow = s.get("workflow", str)
    if not workflow:
        s.error("workflow", "is required")
    return {
        "workflow": workflow,
        "context": s.get("context", dict, default={}),
        "strategy": s.choice("strategy", SPAWN_STRATEGIES, default="wait"),
        "max_restarts": s.positive_number("max_restarts", integer=True, minimum=-1, default=3),
    }


def _wait_for(c):
    value = c.get("wait_for", dict)
    if value is None:
        return None
    w = Checker(c.sink, value, step=c.step, prefix="wait_for.")
    w.unknown_fields({"event", "match", "timeout_seconds"})
    event = w.get("event", str)
    if not event:
        w.error("event", "is required")
    return {"event": event, "match": w.get("match", dict, default={}),
            "timeout_seconds": w.positive_number("timeout_seconds")}


def _emit(c):
    value = c.data.get("emit")
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    emits = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            emits.append({"event": item, "payload": {}})
        elif isinstance(item, dict) and isinstance(item.get("event"), str):
            e = Checker(c.sink, item, step=c.step, prefix=f"emit[{i}].")
            e.unknown_fields({"event", "payload"})
            emits.append({"event": item["event"], "payload": e.get("payload", dict, default={})})
        else:
            c.error(f"emit[{i}]", "must be an event name or a mapping with 'event' and 'payload'")
    return emits


def _rate_limit(c):
    value = c.get("rate_limit", dict)
    if value is None:
        return None
    r = Checker(c.sink, value, step=c.step, prefix="rate_limit.")
    r.unknown_fields({"key", "cost"})
    key = r.get("key", str)
    if not key:
        r.error("key", "is required")
    return {"key": key, "cost": r.positive_number("cost", default=1)}
