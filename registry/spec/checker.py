"""Typed access to a loaded document that records precise errors instead of raising."""
import difflib
import re

PRIORITIES = {"low": 2, "normal": 5, "high": 7, "critical": 9}
EVENT_TYPE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$")
# Durations the engine turns into deadlines are bounded, so none overflows a date.
YEAR_SECONDS = 366 * 24 * 3600


def parse_priority(value):
    """low|normal|high|critical or 0..9 -> 0..9 (9 is the most urgent); None if not a priority."""
    if isinstance(value, str) and value.strip().lower() in PRIORITIES:
        return PRIORITIES[value.strip().lower()]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return value
    return None


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
            self.error(name, f"must be {type_name or _describe(types)}, got {describe_value(value)}")
            return default
        return value

    def string_list(self, name, *, allow_single=False):
        value = self.data.get(name)
        if value is None:
            return []
        if allow_single and isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(name, f"must be a list of strings, got {describe_value(value)}")
            return []
        return list(value)

    def positive_number(self, name, *, integer=False, minimum=0, maximum=None, default=None):
        types = (int,) if integer else (int, float)
        value = self.get(name, types, default=default, type_name="an integer" if integer else "a number")
        if value is not None and value is not default and value <= minimum:
            self.error(name, f"must be greater than {minimum}, got {value}")
            return default
        if value is not None and value is not default and maximum is not None and value > maximum:
            self.error(name, f"must be at most {maximum:g}, got {value:g}")
            return default
        return value

    def duration(self, name, *, unit_seconds, default=None):
        """A positive time in `unit_seconds` units, at most a year."""
        return self.positive_number(name, maximum=YEAR_SECONDS / unit_seconds, default=default)

    def event_name(self, name, *, required_message="is required"):
        """An event type as the bus accepts it (the API's rule), or None with an error."""
        value = self.get(name, str)
        if not value:
            self.error(name, required_message)
            return None
        if not EVENT_TYPE_RE.match(value):
            self.error(name, f"'{value[:60]}' is not an event type: 1-200 letters, digits and _ . : / - "
                             "(e.g. pr_created)")
            return None
        return value

    def priority(self, name, *, default=None):
        value = self.data.get(name)
        if value is None:
            return default
        parsed = parse_priority(value)
        if parsed is None:
            self.error(name, f"must be one of low, normal, high, critical or 0..9, got {value!r}")
            return default
        return parsed

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


def describe_value(value):
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
