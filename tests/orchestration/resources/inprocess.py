"""Running an instance's ready steps in this process through the engine's own services (claim,
run, finish, join), for tests that need no worker: deterministic, with nothing to wait for.
Dispatches and compensations are sent after commit, so inside a `db` test they never leave."""
from orchestration import engine
from orchestration.engine.execute import run_attempt
from orchestration.models import StepItem, StepRun, WorkflowInstance

SPEND = "python:tests.support.pyactions.spend"


def spend(step_id, tokens_in, tokens_out, *, fail=False, **step):
    """A step whose action reports `tokens_in`/`tokens_out` of gpt-4o-mini (then fails, with `fail`)."""
    inputs = {"tokens_in": tokens_in, "tokens_out": tokens_out, **({"fail": True} if fail else {})}
    return {"id": step_id, "action": SPEND, "with": inputs, **step}


def claim_step(instance, step_id):
    run = StepRun.objects.get(instance_id=instance.id, step_id=step_id)
    return engine.step_claim(step_run_id=run.id, attempt=run.attempts + 1, task_id=f"task-{run.id}-{run.attempts}",
                             worker="test")


def finish(claim):
    return engine.step_attempt_finish(claim=claim, outcome=run_attempt(claim))


def run_ready(instance):
    """Run every ready step (and ready foreach item) once; returns the ids of the steps that ran."""
    ran = []
    for run in StepRun.objects.filter(instance_id=instance.id, status__in=["ready", "running"]).order_by("id"):
        if run.item_count is None:
            claim = claim_step(instance, run.step_id) if run.status == "ready" else None
            if claim is not None:
                finish(claim)
                ran.append(run.step_id)
            continue
        for item in StepItem.objects.filter(step_run=run, status="ready").order_by("index"):
            claim = engine.item_claim(step_run_id=run.id, index=item.index,
                                      attempt=item.attempts - item.attempt_base + 1,
                                      task_id=f"item-{run.id}-{item.index}-{item.attempts}", worker="test")
            if claim is not None:
                engine.item_attempt_finish(claim=claim, outcome=run_attempt(claim))
                ran.append(run.step_id)
        engine.items_join(step_run_id=run.id)
    return ran


def run_to_rest(instance, *, passes=20):
    """Run ready steps until none is left; returns the instance as stored."""
    for _ in range(passes):
        if not run_ready(instance):
            break
    return WorkflowInstance.objects.get(id=instance.id)
