"""Beat task of the resources package: queued instances against freed slots and token quotas."""
import logging

from celery import shared_task

from orchestration.periodic import log_outcome

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def resources_sweep():
    """Every DAC_RESOURCES_SWEEP_INTERVAL_SECONDS: a freed slot is handed on by the transaction that
    frees it; this catches the rest (raised limits, a pass cut short)."""
    from orchestration.engine.admission import queue_sweep

    from .quotas import quotas_release

    return log_outcome(logger, "resources sweep", {"queued_started": queue_sweep(), "quota_released": quotas_release()})
