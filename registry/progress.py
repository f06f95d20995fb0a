"""Progress of a long compile or apply, for whoever asked for it (the CLI's progress line).

The work calls `report(phase, done, total)` as it goes; that is a no-op unless a caller set a
reporter with `reporting(callback)` around it (so the API and workers pay nothing and see no
difference). A context variable rather than a parameter: the compile passes through several
layers that have nothing else to do with it.
"""
from contextlib import contextmanager
from contextvars import ContextVar

_reporter = ContextVar("dac_registry_progress", default=None)


def report(phase, done, total):
    callback = _reporter.get()
    if callback is not None:
        callback(phase, done, total)


@contextmanager
def reporting(callback):
    """`callback(phase, done, total)` hears every `report` made inside the block."""
    token = _reporter.set(callback)
    try:
        yield
    finally:
        _reporter.reset(token)
