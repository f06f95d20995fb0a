"""Turn a loaded workflow document (DESIGN §2, either dialect) into the canonical spec.

Shapes and types are checked here, and the cron expressions and time zones of triggers (whose
field paths are known only here); references between steps, actions and templates are
checked in `validate`.
"""
import re

from .checker import EVENT_TYPE_RE, PRIORITIES, Checker, describe_value
from .triggers import normalize_filters, normalize_triggers

WORKFLOW_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
RESERVED_IDS = frozenset({"match", "suggest-chain"})  # routes beside workflows/{id}/
STEP_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
WORKFLOW_TYPES = ("development", "content", "data", "operations", "support", "governance")
BACKOFFS = ("exponential", "linear", "fixed")
TIMEOUT_ACTIONS = ("approve", "reject", "escalate")
SPAWN_STRATEGIES = ("wait", "callback", "fire_and_forget", "supervised")
BUDGET_ACTIONS = ("fail", "escalate")
CONCURRENCY_STRATEGIES = ("queue", "cancel_in_progress", "cancel_new")

WORKFLOW_FIELDS = {
    "id", "name", "type", "description", "inputs", "outputs", "triggers", "trigger", "emits",
    "max_concurrent", "concurrency", "timeout_minutes", "priority", "owner", "tags", "budget", "result",
    "steps", "nodes",
}
STEP_FIELDS = {
    "id", "name", "description", "action", "agent", "with", "inputs", "params", "depends_on",
    "dependsOn", "join", "when", "condition", "foreach", "max_parallel", "retry",
    "timeout_seconds", "on_error", "error_strategy", "approval", "approvalRequired",
    "compensate", "spawn", "wait_for", "emit", "output_schema", "queue", "rate_limit", "operation",
}
STEP_ALIASES = {
    "with": ("with", "inputs", "params"),
    "depends_on": ("depends_on", "dependsOn"),
    "when": ("when", "condition"),
    "on_error": ("on_error", "error_strategy"),
    "approval": ("approval", "approvalRequired"),
}
DEFAULT_RETRY = {"max_attempts": 1, "backoff": "exponential", "base_seconds": 1.0, "max_seconds": 300.0, "jitter": True}


def normalize_workflow(raw, sink):
    """Return the canonical spec of one workflow document; errors go to `sink`."""
    if not isinstance(raw, dict):
        sink.error(f"a workflow must be a mapping, got {describe_value(raw)}")
        return None
    c = Checker(sink, raw)
    c.unknown_fields(WORKFLOW_FIELDS)
    key = c.get("id", str) or c.get("name", str)
    if key is None:
        c.error("id", "a workflow definition needs an id, e.g. 'id: code-review' "
                      "(in the seed-004 dialect, 'name' is accepted in its place)")
    elif not WORKFLOW_ID_RE.match(key):
        c.error("id", f"'{key}' must match {WORKFLOW_ID_RE.pattern}")
    elif key in RESERVED_IDS:
        c.error("id", f"'{key}' is reserved: /api/v1/workflows/{key}/ is an API route")
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
        "concurrency": _concurrency(c),
        "timeout_minutes": c.duration("timeout_minutes", unit_seconds=60),
        "priority": c.priority("priority", default=PRIORITIES["normal"]),
        "budget": _budget(c),
        "result": raw.get("result"),
        "triggers": normalize_triggers(c, raw),
    }
    steps_key = "steps" if "steps" in raw else "nodes"
    raw_steps = raw.get(steps_key)
    if raw_steps is None:
        spec["steps"] = None
    elif not isinstance(raw_steps, list):
        c.error(steps_key, f"must be a list of steps, got {describe_value(raw_steps)}")
        spec["steps"] = None
    else:
        spec["steps"] = [_normalize_step(sink, s, i, steps_key) for i, s in enumerate(raw_steps)]
        spec["steps"] = [s for s in spec["steps"] if s is not None]
    return spec


def _section(c, name, fields):
    """A Checker of the mapping `name` (its own fields only), or None when it is absent."""
    value = c.get(name, dict)
    if value is None:
        return None
    section = Checker(c.sink, value, step=c.step, prefix=f"{name}.")
    section.unknown_fields(fields)
    return section


def _budget(c):
    b = _section(c, "budget", {"tokens", "cost_usd", "on_exceed"})
    if b is None:
        return None
    return {"tokens": b.positive_number("tokens", integer=True), "cost_usd": b.positive_number("cost_usd"),
            "on_exceed": b.choice("on_exceed", BUDGET_ACTIONS, default="fail")}


def _concurrency(c):
    """`concurrency: {key, limit, strategy}`: at most `limit` running instances per rendered key."""
    k = _section(c, "concurrency", {"key", "limit", "strategy"})
    if k is None:
        return None
    key = k.get("key", str)
    if not key:
        k.error("key", "is required: a template of the instance's context, e.g. '{{ context.repo }}'")
    return {"key": key, "limit": k.positive_number("limit", integer=True, default=1),
            "strategy": k.choice("strategy", CONCURRENCY_STRATEGIES, default="queue")}


def _aliased(c, canonical):
    present = [name for name in STEP_ALIASES[canonical] if name in c.data]
    if len(present) > 1:
        c.error(present[1], f"is an alias of '{present[0]}': give only one of them")
    return present[0] if present else canonical


def _normalize_step(sink, raw, index, steps_key):
    if not isinstance(raw, dict):
        sink.error(f"each step must be a mapping, got {describe_value(raw)}", field=f"{steps_key}[{index}]")
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
        "operation": c.get("operation", str, default=""),
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
    c.error(name, f"must be a template string or a boolean, got {describe_value(value)}")
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
        c.error("retry", f"must be a number of attempts or a mapping, got {describe_value(value)}")
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


APPROVAL_FIELDS = {"type", "approvers", "min_approvals", "timeout_minutes", "timeout_seconds", "timeout_action",
                   "level", "options", "escalate_to"}
APPROVAL_LEVELS = ("review", "approval", "intervention")


def default_approval():
    """`approval: true`: approvers from the blueprint or DAC_DEFAULT_APPROVERS, decided by one person."""
    return {"type": "", "approvers": [], "min_approvals": 1, "timeout_seconds": None, "timeout_action": "reject",
            "level": "approval", "options": ["approve", "reject"], "escalate_to": []}


def _approval(c):
    name = _aliased(c, "approval")
    value = c.data.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return default_approval() if value else False
    if name == "approvalRequired" or not isinstance(value, dict):
        c.error(name, f"must be true, false or a mapping, got {describe_value(value)}")
        return None
    a = Checker(c.sink, value, step=c.step, prefix="approval.")
    a.unknown_fields(APPROVAL_FIELDS)
    if "timeout_minutes" in value and "timeout_seconds" in value:
        a.error("timeout_seconds", "give timeout_minutes or timeout_seconds, not both")
    minutes = a.duration("timeout_minutes", unit_seconds=60)
    seconds = a.duration("timeout_seconds", unit_seconds=1)
    return {
        "type": a.get("type", str, default=""),
        "approvers": a.string_list("approvers", allow_single=True),
        "min_approvals": a.positive_number("min_approvals", integer=True, default=1, maximum=100),
        "timeout_seconds": minutes * 60 if minutes is not None else seconds,
        "timeout_action": a.choice("timeout_action", TIMEOUT_ACTIONS, default="reject"),
        "level": a.choice("level", APPROVAL_LEVELS, default="approval"),
        "options": approval_options(a),
        "escalate_to": a.string_list("escalate_to", allow_single=True),
    }


def approval_options(a):
    """`options`: the choices offered (default approve, reject); distinct names, at least two."""
    options = a.string_list("options")
    if "options" not in a.data:
        return ["approve", "reject"]
    if len(options) < 2:
        a.error("options", f"needs at least two choices, got {options}")
    duplicates = sorted({o for o in options if options.count(o) > 1})
    if duplicates:
        a.error("options", f"lists '{duplicates[0]}' more than once")
    bad = [o for o in options if not OPTION_RE.match(o)]
    if bad:
        a.error("options", f"'{bad[0][:40]}' is not an option name: 1-100 letters, digits, _ or -")
    if "acknowledge" in options:
        a.error("options", "'acknowledge' is reserved (it does not decide a gate)")
    return options


OPTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")


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
        s.error("workflow", "is required: the workflow to start as a child")
    context = s.get("context", (dict, str), default={}, type_name="a mapping or a template yielding one")
    return {
        "workflow": workflow,
        "context": context,
        "strategy": s.choice("strategy", SPAWN_STRATEGIES, default="wait"),
        "max_restarts": s.positive_number("max_restarts", integer=True, minimum=-1, default=3),
    }


def _wait_for(c):
    value = c.get("wait_for", dict)
    if value is None:
        return None
    w = Checker(c.sink, value, step=c.step, prefix="wait_for.")
    w.unknown_fields({"event", "match", "correlation_id", "timeout_seconds", "on_timeout"})
    event = w.event_name("event", required_message="is required: the event type to wait for")
    return {"event": event, "match": normalize_filters(w, "match"),
            "correlation_id": w.get("correlation_id", str, default=""),
            "timeout_seconds": w.duration("timeout_seconds", unit_seconds=1),
            "on_timeout": w.choice("on_timeout", ("fail", "continue"), default="fail")}


def _emit(c):
    value = c.data.get("emit")
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    emits = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            if not EVENT_TYPE_RE.match(item):
                c.error(f"emit[{i}]", f"'{item[:60]}' is not an event type: 1-200 letters, digits and _ . : / -")
            emits.append({"event": item, "payload": {}, "correlation_id": None, "priority": None})
        elif isinstance(item, dict) and isinstance(item.get("event"), str):
            e = Checker(c.sink, item, step=c.step, prefix=f"emit[{i}].")
            e.unknown_fields({"event", "payload", "correlation_id", "priority"})
            e.event_name("event")
            emits.append({"event": item["event"], "payload": e.get("payload", dict, default={}),
                          "correlation_id": e.get("correlation_id", str), "priority": e.priority("priority")})
        else:
            c.error(f"emit[{i}]", "must be an event name or a mapping with 'event' and 'payload'")
    return emits


def _rate_limit(c):
    r = _section(c, "rate_limit", {"key", "cost"})
    if r is None:
        return None
    key = r.get("key", str)
    if not key:
        r.error("key", "is required")
    return {"key": key, "cost": r.positive_number("cost", default=1)}
