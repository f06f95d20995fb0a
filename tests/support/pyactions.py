"""Plain callables for `python:` actions in tests (allow-listed by tests/env_defaults.py)."""


def add(a, b):
    return {"sum": a + b}


def whoami(ctx):
    return {"step": ctx.step_id, "attempt": ctx.attempt}


def nul():
    return {"text": "a\x00b"}


def spend(ctx, tokens_in=0, tokens_out=0, model="gpt-4o-mini", fail=False):
    """Report LLM usage as a model call would (`fail`: then fail the attempt, the tokens spent)."""
    ctx.report_usage(tokens_in=tokens_in, tokens_out=tokens_out, model=model)
    if fail:
        raise RuntimeError("the model answered nonsense")
    return {"spent": tokens_in + tokens_out}


def traceparent(ctx, fail_first=False):
    """The W3C `traceparent` of the OpenTelemetry context the attempt runs in ({} when none);
    with `fail_first`, the first attempt fails (and its output is not kept)."""
    from opentelemetry import propagate

    if fail_first and ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    carrier = {}
    propagate.inject(carrier)
    return carrier


def slow_first(ctx, seconds=30):
    """Sleeps `seconds` on a step's (or item's) first attempt only: work a crash interrupts, whose
    next attempt then ends at once."""
    import time

    if ctx.attempt == 1:
        time.sleep(seconds)
    return {"attempt": ctx.attempt}
