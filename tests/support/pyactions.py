"""Plain callables for `python:` actions in tests (allow-listed by tests/env_defaults.py)."""


def add(a, b):
    return {"sum": a + b}


def whoami(ctx):
    return {"step": ctx.step_id, "attempt": ctx.attempt}


def nul():
    return {"text": "a\x00b"}
