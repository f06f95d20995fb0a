"""Child-workflow tasks: thin wrappers that call one service each."""
import time

from celery import shared_task

from orchestration import engine
from orchestration.tasks import DB_RETRY, inline_for, redelivered, run_claims

from . import services


@shared_task(bind=True, ignore_result=True, **DB_RETRY)
def spawn_child(self, step_run_id, index, attempt):
    """Park a spawn step (or one of its foreach items) and start its child; the child's first
    plain step runs here at once when it can (no trip through the broker)."""
    started = time.monotonic()
    child = services.child_spawn(step_run_id=step_run_id, index=index, attempt=attempt,
                                 inline=inline_for(self, started))
    claim = child.inline_claim if child is not None else None
    if claim is None and redelivered(self):  # the worker died running the child's first step
        claim = engine.step_reclaim(task_id=self.request.id, worker=self.request.hostname or "")
    if claim is not None:
        run_claims(self, claim, started=started)


@shared_task(ignore_result=True, **DB_RETRY)
def child_ended(child_id):
    """Sent when a spawned child ends: its parent step applies its strategy."""
    services.child_ended(child_id=child_id)
