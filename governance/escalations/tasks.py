"""Beat's escalation sweep: deadlines (at most one interval late) and condition checks."""
import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def escalations_sweep():
    """Beat, every DAC_ESCALATION_SWEEP_INTERVAL_SECONDS."""
    from .deadlines import escalations_sweep as sweep

    done = sweep()
    if any(done.values()):
        logger.info("escalation sweep: %s", ", ".join(f"{k}={v}" for k, v in done.items() if v))
    return done
