"""Typed access to a loaded document that records precise errors instead of raising."""
import difflib

PRIORITIES = {"low": 2, "normal": 5, "high": 7, "critical": 9}


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

    def positive_number(self, name, *, integer=False, minimum=0, default=None):
        types = (int,) if integer else (int, float)
        value = self.get(name, types, default=default, type_name="an integer" if integer else "a number")
        if value is not None and value is not default and value <= minimum:
            self.error(name, f"must be greater than {minimum}, got {value}")
            return default
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
