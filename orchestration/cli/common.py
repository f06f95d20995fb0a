"""What every verb shares: JSON output, the acting user, JSON arguments."""
import json

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def as_json(data):
    return json.dumps(data, indent=2, default=str)


def actor(name):
    """`--as USER`: that existing, active user, checked as them; without it the local operator `cli`."""
    if not name:
        return "cli"
    user = get_user_model().objects.filter(username=name).first()
    if user is None or not user.is_active:
        raise CommandError(f"--as: no active user '{name}'")
    return user


def json_object(text, flag):
    """A JSON object given on the command line; a clear error naming the flag otherwise."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{flag} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CommandError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def json_or_text(text):
    """VALUE arguments: JSON when it parses, else the text itself as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def priority_option(value):
    """`--priority`: low|normal|high|critical or 0..9."""
    from registry.spec.checker import parse_priority

    if value is None:
        return None
    parsed = parse_priority(value)
    if parsed is None:
        raise CommandError(f"--priority must be low, normal, high, critical or 0..9, got {value!r}")
    return parsed
