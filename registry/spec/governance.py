"""A blueprint's `governance` section and `coordination.escalation` rules (DESIGN §3, §7.2).

Conditions are parsed here with the one governance expression language, so an unparsable
condition is a validation error naming its field, never a surprise at run time.
"""
from governance.conditions import ConditionError, parse

from .checker import Checker, describe_value
from .normalize import APPROVAL_LEVELS, TIMEOUT_ACTIONS

GOVERNANCE_FIELDS = {"approval_required", "auto_approve", "approvers", "rules", "notifications", "human_oversight"}
RULE_FIELDS = {"name", "when", "action", "approvers", "min_approvals", "timeout_minutes", "timeout_seconds",
               "timeout_action", "escalate_to", "level"}
RULE_ACTIONS = ("auto_approve", "require_approval", "escalate")
ESCALATION_FIELDS = {"condition", "action", "approvers", "min_approvals", "level", "title"}
NOTIFICATION_FIELDS = {"channel", "url", "to", "levels"}
LEVELS = ("info", "review", "approval", "intervention")


def normalize_governance(sink, raw):
    """The canonical `governance` section; errors go to `sink` with their field paths."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        sink.error(f"must be a mapping, got {describe_value(raw)}", field="governance")
        return {}
    c = Checker(sink, raw, prefix="governance.")
    c.unknown_fields(GOVERNANCE_FIELDS)
    return {
        "approval_required": c.string_list("approval_required"),
        "auto_approve": c.string_list("auto_approve"),
        "approvers": c.string_list("approvers", allow_single=True),
        "rules": [_rule(sink, r, i) for i, r in enumerate(c.get("rules", list, default=[]))],
        # Absent: the env defaults notify; an empty list: nobody is notified.
        "notifications": None if raw.get("notifications") is None else
        [_notification(sink, n, i) for i, n in enumerate(c.get("notifications", list, default=[]))],
        "human_oversight": c.get("human_oversight", dict, default={}),
    }


def normalize_escalations(sink, coordination):
    """`coordination.escalation: [{condition, action: notify_*|require_approval, approvers, level}]`."""
    entries = Checker(sink, coordination, prefix="coordination.").get("escalation", list, default=[])
    rules = []
    for i, raw in enumerate(entries):
        where = f"coordination.escalation[{i}]"
        if not isinstance(raw, dict):
            sink.error(f"must be a mapping, got {describe_value(raw)}", field=where)
            continue
        e = Checker(sink, raw, prefix=f"{where}.")
        e.unknown_fields(ESCALATION_FIELDS)
        condition = _condition(e, "condition")
        action = e.get("action", str)
        if not action:
            e.error("action", "is required (require_approval, or notify_<who>, e.g. notify_team_lead)")
        elif action != "require_approval" and not action.startswith("notify_"):
            e.error("action", f"must be require_approval or notify_<who> (e.g. notify_team_lead), got '{action}'")
        default_level = "approval" if action == "require_approval" else "review"
        rules.append({
            "key": f"{action}:{raw.get('condition')}"[:200],
            "condition": condition, "action": action or "",
            "approvers": e.string_list("approvers", allow_single=True),
            "min_approvals": e.positive_number("min_approvals", integer=True, default=1, maximum=100),
            "level": e.choice("level", LEVELS, default=default_level),
            "title": e.get("title", str, default=""),
        })
    return rules


def _rule(sink, raw, index):
    where = f"governance.rules[{index}]"
    if not isinstance(raw, dict):
        sink.error(f"must be a mapping, got {describe_value(raw)}", field=where)
        return {}
    r = Checker(sink, raw, prefix=f"{where}.")
    r.unknown_fields(RULE_FIELDS)
    minutes = r.duration("timeout_minutes", unit_seconds=60)
    seconds = r.duration("timeout_seconds", unit_seconds=1)
    action = r.choice("action", RULE_ACTIONS)
    if action is None and "action" not in raw:
        r.error("action", f"is required: one of {', '.join(RULE_ACTIONS)}")
    return {
        "name": r.get("name", str, default=f"rule-{index}"),
        "when": _condition(r, "when"),
        "action": action or "",
        "approvers": r.string_list("approvers", allow_single=True),
        "min_approvals": r.positive_number("min_approvals", integer=True, default=None, maximum=100),
        "timeout_seconds": minutes * 60 if minutes is not None else seconds,
        "timeout_action": r.choice("timeout_action", TIMEOUT_ACTIONS),
        "escalate_to": r.string_list("escalate_to", allow_single=True),
        "level": r.choice("level", APPROVAL_LEVELS),
    }


def _condition(checker, name):
    source = checker.data.get(name)
    if source is None:
        checker.error(name, "is required: a condition such as `cost_estimate > $50`")
        return ""
    if isinstance(source, bool):
        return "true" if source else "false"
    try:
        return parse(source).source
    except ConditionError as exc:
        checker.error(name, f"is not a valid condition: {exc}")
        return ""


def _notification(sink, raw, index):
    where = f"governance.notifications[{index}]"
    if not isinstance(raw, dict):
        sink.error(f"must be a mapping, got {describe_value(raw)}", field=where)
        return {}
    n = Checker(sink, raw, prefix=f"{where}.")
    n.unknown_fields(NOTIFICATION_FIELDS)
    channel = n.choice("channel", ("webhook", "email"))
    entry = {"channel": channel, "levels": n.string_list("levels") or list(LEVELS)}
    unknown = [lv for lv in entry["levels"] if lv not in LEVELS]
    if unknown:
        n.error("levels", f"'{unknown[0]}' is not a level: one of {', '.join(LEVELS)}")
    if channel == "webhook":
        url = n.get("url", str, default="")
        if not url.startswith(("http://", "https://")):
            n.error("url", "needs an http:// or https:// URL")
        entry["url"] = url
    elif channel == "email":
        entry["to"] = n.string_list("to", allow_single=True)
        if not entry["to"] or not all("@" in a for a in entry["to"]):
            n.error("to", "needs one or more email addresses")
    else:
        n.error("channel", "is required: webhook or email")
    return entry
