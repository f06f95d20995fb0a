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
