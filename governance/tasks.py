"""Celery tasks of the governance app (found by autodiscovery: governance is an installed app)."""
import logging

from celery import shared_task

from . import audit

logger = logging.getLogger(__name__)

# Rows one run seals at most; a backlog beyond it is left to the next run.
SEAL_PER_RUN = 50_000


@shared_task(name="governance.tasks.audit_seal", ignore_result=True)
def audit_seal():
    """Beat, every DAC_AUDIT_SEAL_INTERVAL_SECONDS: chain the audit rows committed since the last run."""
    sealed = audit.audit_seal(limit=SEAL_PER_RUN)
    if sealed:
        logger.info("audit: sealed %d entries", sealed)
    return sealed
