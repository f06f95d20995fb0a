"""The notification task: load by id, call the service, re-dispatch itself when told to.

A failed send is never waited out in a worker: the service schedules the next try in the row and
returns the countdown, and the task sends a new message with that countdown (DESIGN §1.3).
"""
from celery import shared_task

from orchestration.tasks import DB_RETRY

from . import services

# A stuck send (a server that trickles bytes) is cut before the claim's lease runs out: the soft
# limit is recorded as a failed try; the hard one leaves the row to the reconciler.
SOFT_TIME_LIMIT = services.LEASE_SECONDS / 2
TIME_LIMIT = services.LEASE_SECONDS * 3 / 4


@shared_task(ignore_result=True, soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT, **DB_RETRY)
def notification_deliver(delivery_id):
    countdown = services.notification_deliver(delivery_id=delivery_id)
    if countdown is not None:
        services.send_tasks([delivery_id], countdown=countdown)
    return countdown
