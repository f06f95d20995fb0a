"""PostgreSQL cannot store a NUL character, nor an unpaired UTF-16 surrogate (which JSON's
`\\ud800` escapes can produce), in text or jsonb: find one before it tries."""
import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = "contains a NUL character or an unpaired surrogate, which PostgreSQL cannot store"


def unstorable(text):
    return bool(_UNSTORABLE.search(text))


def unstorable_path(value, path="$"):
    """The JSON path of the first string (or key) PostgreSQL could not store, or None. Iterative,
    so a value nested as deep as a parser allows cannot exhaust the stack here."""
    pending = [(value, path)]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            if unstorable(value):
                return path
        elif isinstance(value, dict):
            for key in value:
                if unstorable(str(key)):
                    return path
            pending.extend(reversed([(item, f"{path}.{key}") for key, item in value.items()]))
        elif isinstance(value, list):
            pending.extend(reversed([(item, f"{path}[{index}]") for index, item in enumerate(value)]))
    return None
