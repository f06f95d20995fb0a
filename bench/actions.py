"""`python:` actions of the bench's workflows (allow-listed for the bench's processes only, by
bench/run.py through DAC_PYTHON_ACTION_ALLOWLIST)."""
import time


def slow_first(ctx, seconds=60):
    """Sleeps `seconds` on its first attempt only: the work a killed worker was doing, whose next
    attempt (on a live worker) then ends at once, so recovery time is measured, not work."""
    if ctx.attempt == 1:
        time.sleep(seconds)
    return {"attempt": ctx.attempt}
