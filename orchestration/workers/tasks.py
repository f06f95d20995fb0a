"""Beat task of the workers package: recover what lost workers held."""
import logging

from celery import shared_task

from orchestration.periodic import log_outcome

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def workers_sweep():
    """Every DAC_WORKER_SWEEP_INTERVAL_SECONDS: the running steps and foreach items of workers that
    stopped beating go back to ready (orchestration.workers.services)."""
    from .services import workers_lost_recover

    return log_outcome(logger, "workers sweep", workers_lost_recover())
