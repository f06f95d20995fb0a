"""Notification deliveries (DESIGN §7.3): queued in the transaction that changes an escalation, sent by
a task after commit, retried with backoff, re-sent by the reconciler when a message was lost.

Each delivery is a row first and a message second, so PostgreSQL knows what must still go out and
the message carries only an id. Sending is at-least-once; a conditional claim (status pending and
due -> tries + 1, a lease) keeps duplicate messages from sending the same delivery concurrently,
and receivers can drop repeats by the `X-DAC-Delivery` id.
"""
import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import channels
from .config import targets_for
from .models import DeliveryStatus, NotificationDelivery

logger = logging.getLogger(__name__)

EVENTS = ("created", "resolved", "expired")
# A claimed delivery is left alone this long. It must outlast one send (the webhook timeout, the
# SMTP timeout, the task's time limit), else a duplicate message could send it a second time.
LEASE_SECONDS = 60.0
RECONCILE_LIMIT = 500


def notifications_queue(*, escalation, event):
    """Record one delivery per configured target for `event` of `escalation`, and send a task for
    each after the caller's transaction commits. A repeated call creates nothing twice.

    Returns the ids of the deliveries that will be sent.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; expected one of {', '.join(EVENTS)}")
    targets = targets_for(escalation)
    if not targets:
        return []
    now = timezone.now()
    NotificationDelivery.objects.bulk_create(
        [NotificationDelivery(escalation=escalation, event=event, channel=t.channel, target=t.target,
                              created_at=now, next_try_at=now) for t in targets],
        ignore_conflicts=True,
    )
    # ignore_conflicts leaves the ids unset: read them back. Never-claimed ones only, so a repeated
    # call does not add messages for deliveries that are already being sent or retried.
    ids = list(NotificationDelivery.objects.filter(escalation=escalation, event=event, status=DeliveryStatus.PENDING,
                                                   tries=0).values_list("id", flat=True))
    if ids:
        transaction.on_commit(partial(send_tasks, ids), robust=True)
    return ids


def send_tasks(delivery_ids, *, countdown=None):
    """One `notification_deliver` message per id. A broker failure is logged, not raised: the rows
    stay pending and `notifications_reconcile` sends them later."""
    from .tasks import notification_deliver

    for delivery_id in delivery_ids:
        try:
            notification_deliver.apply_async(args=(delivery_id,), countdown=countdown)
        except Exception:  # noqa: BLE001 - the reconciler re-sends from the database
            logger.exception("could not send notification tasks %s; the reconciler will", delivery_ids)
            return


def notification_deliver(*, delivery_id):
    """Claim, send and record one delivery.

    Returns the countdown in seconds after which the caller must run this again (the send failed and
    tries are left), else None: sent, failed for good, or not ours to send (already sent, claimed by
    another message, not due yet, or gone).
    """
    now = timezone.now()
    claimed = (NotificationDelivery.objects
               .filter(id=delivery_id, status=DeliveryStatus.PENDING, next_try_at__lte=now)
               .update(tries=F("tries") + 1, next_try_at=now + timezone.timedelta(seconds=LEASE_SECONDS)))
    if not claimed:
        return None
    delivery = (NotificationDelivery.objects.select_related("escalation", "escalation__assignee")
                .get(id=delivery_id))
    try:
        channels.send(delivery)
    except channels.DeliveryFailed as exc:
        return _record_failure(delivery, str(exc))
    except Exception as exc:  # noqa: BLE001 - a sender's bug or a time limit is a failed try, recorded and retried
        logger.exception("notification %s: unexpected error while sending", delivery_id)
        secret_url = delivery.target if delivery.channel == "webhook" else None
        return _record_failure(delivery, channels.scrub(f"{type(exc).__name__}: {exc}", url=secret_url))
    # Sent wins even if our lease ran out meanwhile: the message did go out.
    NotificationDelivery.objects.filter(id=delivery_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.SENT, sent_at=timezone.now())
    return None


def retry_countdown(tries):
    """Seconds before try `tries + 1`: base, 2 * base, 4 * base ... at most DAC_NOTIFY_RETRY_MAX_SECONDS."""
    base = settings.DAC_NOTIFY_RETRY_BASE_SECONDS
    return min(base * 2 ** max(tries - 1, 0), settings.DAC_NOTIFY_RETRY_MAX_SECONDS)


def _record_failure(delivery, error):
    """Record a failed try; schedule the next one, or give up after DAC_NOTIFY_MAX_TRIES.
    Only the holder of this try (same `tries`) may record it."""
    mine = NotificationDelivery.objects.filter(id=delivery.id, status=DeliveryStatus.PENDING, tries=delivery.tries)
    shown = channels.redact_url(delivery.target) if delivery.channel == "webhook" else delivery.target
    if delivery.tries >= settings.DAC_NOTIFY_MAX_TRIES:
        mine.update(status=DeliveryStatus.FAILED, last_error=error)
        logger.warning("notification %s (%s %s) failed after %d tries: %s", delivery.id, delivery.channel, shown,
                       delivery.tries, error)
        return None
    countdown = retry_countdown(delivery.tries)
    if not mine.update(last_error=error, next_try_at=timezone.now() + timezone.timedelta(seconds=countdown)):
        return None
    logger.info("notification %s (%s %s) try %d failed, next in %.1fs: %s", delivery.id, delivery.channel, shown,
                delivery.tries, countdown, error)
    return countdown


def notifications_reconcile(*, limit=RECONCILE_LIMIT):
    """Pending deliveries due more than DAC_NOTIFY_RECONCILE_AFTER_SECONDS ago lost their message
    (between commit and broker, or with a dead worker): send them again. Each is marked due now, so
    the next pass leaves it alone while its new message is on the way."""
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.DAC_NOTIFY_RECONCILE_AFTER_SECONDS)
    with transaction.atomic():
        ids = list(NotificationDelivery.objects.select_for_update(skip_locked=True)
                   .filter(status=DeliveryStatus.PENDING, next_try_at__lt=cutoff)
                   .order_by("next_try_at").values_list("id", flat=True)[:limit])
        if ids:
            NotificationDelivery.objects.filter(id__in=ids).update(next_try_at=now)
            transaction.on_commit(partial(send_tasks, ids), robust=True)
    return {"notifications_resent": len(ids)}
