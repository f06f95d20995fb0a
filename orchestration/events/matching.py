"""Matching an event's payload against trigger filters and `wait_for.match` (pure).

A filter key is a dotted path into the payload (`pr.author`, `items.0.sku`); a string value is
a glob (`acme/*`, `**.{ts,py}` with brace alternatives), a list means any of its values, and
anything else must be equal (a boolean equals only a boolean). A glob also matches a number by
its text, and a list in the payload matches when any element does.
"""
import re
from fnmatch import fnmatchcase

_MISSING = object()
_BRACES = re.compile(r"\{([^{}]*,[^{}]*)\}")


def dotted_get(data, path):
    """The value at `path`, or _MISSING; list elements are addressed by their index."""
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def expand_braces(pattern):
    """'*.{ts,py}' -> ['*.ts', '*.py'] (innermost groups first, so groups may nest)."""
    match = _BRACES.search(pattern)
    if not match:
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    expanded = (p for option in match.group(1).split(",") for p in expand_braces(head + option + tail))
    return list(dict.fromkeys(expanded))  # nested groups can repeat an alternative


def alternatives(pattern):
    """An upper bound of how many patterns `expand_braces` makes (the product of the groups' sizes)."""
    count = 1
    while match := _BRACES.search(pattern):
        count *= match.group(1).count(",") + 1
        pattern = pattern[:match.start()] + "_" + pattern[match.end():]
    return count


# A filter glob may offer at most this many {a,b} alternatives (they are tried one by one).
MAX_ALTERNATIVES = 64


def _glob(pattern, actual):
    if isinstance(actual, bool) or not isinstance(actual, (str, int, float)):
        return False
    text = actual if isinstance(actual, str) else str(actual)
    if alternatives(pattern) > MAX_ALTERNATIVES:  # refused at registration; never expanded here
        return fnmatchcase(text, pattern)
    return any(fnmatchcase(text, p) for p in expand_braces(pattern))


def _equal(expected, actual):
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected is actual
    return expected == actual


def value_matches(expected, actual, *, globs=True):
    if isinstance(actual, list) and not isinstance(expected, list):
        return any(value_matches(expected, element, globs=globs) for element in actual)
    if isinstance(expected, list):
        return any(value_matches(option, actual, globs=globs) for option in expected)
    if isinstance(expected, str) and globs:
        return _glob(expected, actual)
    return _equal(expected, actual)


def payload_matches(filters, payload, *, globs=True):
    """True when every filter holds for `payload` (no filters: everything matches). Without
    `globs`, strings must be equal: what `wait_for.match` renders from data is taken literally,
    so a value such as '*' can never match someone else's event."""
    for path, expected in (filters or {}).items():
        actual = dotted_get(payload if isinstance(payload, dict) else {}, path)
        if actual is _MISSING or not value_matches(expected, actual, globs=globs):
            return False
    return True
