"""Notifications end to end with real Celery workers: queued in a committed transaction, sent by the
worker after commit, retried by re-dispatched messages (default backoff 1 s, 2 s), and re-sent by
the reconciler when the message was lost."""
import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from governance.escalations.models import Escalation
from governance.notifications import services
from governance.notifications.models import NotificationDelivery
from tests.support.helpers import apply_yaml, wait_until
from tests.support.receivers import HttpReceiver

pytestmark = pytest.mark.integration


def sent(delivery_id):
    return NotificationDelivery.objects.filter(id=delivery_id, status="sent").first()


def test_a_receiver_failing_twice_gets_the_third_try_from_the_workers(live):
    with HttpReceiver(fail_first=2) as flaky:
        apply_yaml(f"""
name: live-notify
workflows:
  - {{id: deploy, steps: [{{id: a, action: noop}}]}}
governance:
  notifications:
    - {{channel: webhook, url: "{flaky.url}/T0/B0", levels: [approval]}}
""")
        with transaction.atomic():
            escalation = Escalation.objects.create(level="approval", title="Deploy to production", workflow="deploy")
            [delivery_id] = services.notifications_queue(escalation=escalation, event="created")
        delivery = wait_until(lambda: sent(delivery_id), timeout=30, interval=0.1,
                              message="the third try to be recorded as sent")
        assert delivery.tries == 3 and delivery.last_error.startswith("HTTP 500")
        assert len(flaky.requests) == 3
        assert {r["headers"]["X-DAC-Delivery"] for r in flaky.requests} == {str(delivery_id)}
        assert flaky.requests[-1]["body"]["escalation"]["id"] == str(escalation.id)


def test_the_reconciler_resends_a_delivery_whose_message_was_lost(live):
    with HttpReceiver() as receiver:
        escalation = Escalation.objects.create(level="intervention", title="Stuck", workflow="anything")
        # A committed row whose message never reached the broker.
        lost = NotificationDelivery.objects.create(
            escalation=escalation, event="created", channel="webhook", target=receiver.url,
            next_try_at=timezone.now() - datetime.timedelta(minutes=1))
        assert services.notifications_reconcile() == {"notifications_resent": 1}
        delivery = wait_until(lambda: sent(lost.id), timeout=30, interval=0.1, message="the re-sent delivery")
        assert delivery.tries == 1
        assert [r["headers"]["X-DAC-Event"] for r in receiver.requests] == ["governance.escalation.created"]
