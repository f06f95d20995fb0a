"""Identifiers from the outside (query parameters, CLI arguments, action inputs)."""
import uuid


def as_uuid(value):
    """`value` as a UUID, or None when it is empty or not one (a filter on it matches nothing)."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
