"""A blueprint's `coordination.rate_limits` and `coordination.resources` (DESIGN §3, §6.6), and the
same shapes from the environment (DAC_RATE_LIMITS, DAC_MAX_RUNNING_PER_TYPE)."""
import re
from decimal import Decimal, InvalidOperation

from .checker import Checker, describe_value
from .normalize import WORKFLOW_TYPES

PERIODS = {"second": 1, "minute": 60, "hour": 3600}
BUCKET_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")
_ENV_BUCKET_RE = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d+)\s*/\s*(second|minute|hour)\s*$")
RESOURCE_FIELDS = {"api_tokens"}


def normalize_rate_limits(sink, coordination):
    """`{NAME: {limit, per: second|minute|hour}}` -> {NAME: {"limit": int, "per": str}}."""
    raw = Checker(sink, coordination, prefix="coordination.").get("rate_limits", dict, default={})
    buckets = {}
    for name, value in raw.items():
        where = f"coordination.rate_limits.{name}"
        if not isinstance(name, str) or not BUCKET_NAME_RE.match(name):
            sink.error(f"a bucket name must match {BUCKET_NAME_RE.pattern}", field=where)
            continue
        if not isinstance(value, dict):
            sink.error(f"must be a mapping {{limit, per}}, got {describe_value(value)}", field=where)
            continue
        b = Checker(sink, value, prefix=f"{where}.")
        b.unknown_fields({"limit", "per"})
        limit = b.positive_number("limit", integer=True)
        if limit is None and "limit" not in value:
            b.error("limit", "is required")
        per = b.choice("per", tuple(PERIODS), default="second")
        if limit is not None and per is not None:
            buckets[name] = {"limit": limit, "per": per}
    return buckets


def normalize_resources(sink, coordination):
    """`resources: {api_tokens: {TYPE: "N%"}}` -> {"api_tokens": {TYPE: percent as a string}}."""
    raw = Checker(sink, coordination, prefix="coordination.").get("resources", dict, default={})
    Checker(sink, raw, prefix="coordination.resources.").unknown_fields(RESOURCE_FIELDS)
    shares = Checker(sink, raw, prefix="coordination.resources.").get("api_tokens", dict, default={})
    percents = {}
    for workflow_type, value in shares.items():
        where = f"coordination.resources.api_tokens.{workflow_type}"
        if workflow_type not in WORKFLOW_TYPES:
            sink.error(f"unknown workflow type '{workflow_type}' (known: {', '.join(WORKFLOW_TYPES)})", field=where)
            continue
        percent = _percent(value)
        if percent is None:
            sink.error(f"must be a percentage such as '60%', got {describe_value(value)}", field=where)
            continue
        percents[workflow_type] = str(percent)
    total = sum((Decimal(p) for p in percents.values()), Decimal(0))
    if total > 100:
        sink.error(f"shares add up to {total}%, more than 100%", field="coordination.resources.api_tokens")
    return {"api_tokens": percents} if percents else {}


def _percent(value):
    if isinstance(value, bool):
        return None
    text = str(value).strip()
    text = text[:-1].strip() if text.endswith("%") else text
    try:
        percent = Decimal(text)
    except InvalidOperation:
        return None
    return percent if 0 < percent <= 100 and percent.is_finite() else None


def parse_env_rate_limits(text, *, name="DAC_RATE_LIMITS"):
    """"llm=60/minute,search=5/second" -> {NAME: {"limit", "per"}}; ValueError naming the entry."""
    buckets = {}
    for entry in filter(None, (e.strip() for e in (text or "").split(","))):
        match = _ENV_BUCKET_RE.match(entry)
        if not match or int(match.group(2)) < 1 or not BUCKET_NAME_RE.match(match.group(1)):
            raise ValueError(f"{name}: '{entry}' is not NAME=LIMIT/second|minute|hour (e.g. llm=60/minute)")
        buckets[match.group(1)] = {"limit": int(match.group(2)), "per": match.group(3)}
    return buckets


def parse_env_type_limits(text, *, name="DAC_MAX_RUNNING_PER_TYPE"):
    """"development=10,support=5" -> {TYPE: limit}; ValueError naming the entry."""
    limits = {}
    for entry in filter(None, (e.strip() for e in (text or "").split(","))):
        workflow_type, _, number = (part.strip() for part in entry.partition("="))
        if workflow_type not in WORKFLOW_TYPES or not number.isdigit() or int(number) < 1:
            raise ValueError(f"{name}: '{entry}' is not TYPE=LIMIT with TYPE one of {', '.join(WORKFLOW_TYPES)} "
                             "and LIMIT a positive integer")
        limits[workflow_type] = int(number)
    return limits
