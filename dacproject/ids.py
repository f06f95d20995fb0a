"""Identifiers: time-ordered ones for rows written at a high rate, and ids from the outside
(query parameters, CLI arguments, action inputs)."""
import os
import time
import uuid


def uuid7():
    """A version-7 UUID (RFC 9562): 48 bits of Unix milliseconds, then random bits. New rows then
    land at the end of their primary-key index instead of on a random page of it."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def short_id(value):
    """What a list shows of an id: its first 8 characters and, because the first 8 of time-ordered
    ids made within about a minute are the same, its last 4 too: `01a22ab5…f76d`."""
    text = str(value)
    return f"{text[:8]}\u2026{text[-4:]}" if len(text) > 12 else text


def as_uuid(value):
    """`value` as a UUID, or None when it is empty or not one (a filter on it matches nothing)."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
