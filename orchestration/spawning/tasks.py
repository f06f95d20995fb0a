"""Child-workflow tasks: thin wrappers that call one service each."""
from celery import shared_task

from orchestration.tasks import DB_RETRY

from . import services


@shared_task(ignore_result=True, **DB_RETRY)
def spawn_child(step_run_id, index, attempt):
    """Park a spawn step (or one of its foreach items) and start its child."""
    services.child_spawn(step_run_id=step_run_id, index=index, attempt=attempt)


@shared_task(ignore_result=True, **DB_RETRY)
def child_ended(child_id):
    """Sent when a spawned child ends: its parent step applies its strategy."""
    services.child_ended(child_id=child_id)
