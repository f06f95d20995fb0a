"""Trace and span ids derived from database ids, so every process names them alike.

A trace is a correlation: its id is the first 16 bytes of sha256(correlation id), so the instances
an event started, spawned children and whatever their emitted events start land in one trace,
whichever process ends them. An instance's span id comes from its instance id the same way, so
its attempts and children name it as their parent without it being held open anywhere: an
instance may wait hours for an approval, across restarts, before its span is emitted.
"""
import hashlib


def _derived(text, size):
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:size], "big")
    return number or 1  # zero is the invalid id


def trace_id(correlation_id):
    """The 128-bit trace id of a correlation: its hex form is sha256(correlation id)'s first 32 digits."""
    return _derived(str(correlation_id), 16)


def instance_span_id(instance_id):
    """The 64-bit span id of an instance."""
    return _derived(f"instance:{instance_id}", 8)
