"""Notifications: who is told, what they receive, and how failures are retried, against a real local
HTTP receiver and a real SMTP server. The services run for real; time is moved by setting a
delivery's `next_try_at`, never by sleeping."""
import datetime

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from governance.escalations.models import Escalation
from governance.escalations.selectors import escalation_as_dict
from governance.notifications import services
from governance.notifications.models import NotificationDelivery
from tests.support.helpers import apply_yaml
from tests.support.receivers import HttpReceiver, SmtpReceiver, free_port

DEADLINE = datetime.datetime(2030, 5, 1, 10, 0, tzinfo=datetime.UTC)


def blueprint(notifications_yaml, *, name="notify-bp", workflow="deploy"):
    governance = f"governance:\n  notifications:\n{notifications_yaml}" if notifications_yaml is not None else ""
    apply_yaml(f"""
name: {name}
workflows:
  - {{id: {workflow}, steps: [{{id: a, action: noop}}]}}
{governance}
""")


def escalation(**fields):
    values = {"level": "approval", "type": "production_deployment", "title": "Deploy to production",
              "workflow": "deploy", "deadline": DEADLINE, "approvers": ["tech_lead"]}
    return Escalation.objects.create(**{**values, **fields})


def queued(esc, event="created"):
    with transaction.atomic():
        services.notifications_queue(escalation=esc, event=event)
    return sorted(NotificationDelivery.objects.filter(escalation=esc, event=event)
                  .values_list("channel", "target"))


def delivery_to(url, esc=None, event="created"):
    return NotificationDelivery.objects.create(escalation=esc or escalation(), event=event, channel="webhook",
                                               target=url)


def due_now(delivery):
    """The backoff has passed (instead of waiting it out)."""
    NotificationDelivery.objects.filter(id=delivery.id).update(next_try_at=timezone.now())


@pytest.fixture
def receiver():
    with HttpReceiver() as server:
        yield server


# --- who is told ---------------------------------------------------------------------------------

def test_blueprint_entries_apply_to_the_levels_they_list(db):
    blueprint("""    - {channel: webhook, url: "https://hooks.example/T0/B0", levels: [approval, intervention]}
    - {channel: email, to: [ops@x.org, lead@x.org], levels: [review]}
    - {channel: webhook, url: "https://all.example/hook"}
""")
    assert queued(escalation(level="approval")) == [("webhook", "https://all.example/hook"),
                                                    ("webhook", "https://hooks.example/T0/B0")]
    assert queued(escalation(level="review")) == [("email", "lead@x.org"), ("email", "ops@x.org"),
                                                  ("webhook", "https://all.example/hook")]
    assert queued(escalation(level="info")) == [("webhook", "https://all.example/hook")]


@override_settings(DAC_NOTIFY_WEBHOOK_URL="https://default.example/hook", DAC_NOTIFY_EMAILS=["oncall@x.org"],
                   DAC_NOTIFY_LEVELS=["approval", "intervention"])
def test_env_defaults_serve_workflows_without_blueprint_notifications(db):
    defaults = [("email", "oncall@x.org"), ("webhook", "https://default.example/hook")]
    assert queued(escalation(workflow="not-in-any-blueprint")) == defaults
    assert queued(escalation(workflow="not-in-any-blueprint", level="review")) == []
    blueprint(None, name="quiet-bp", workflow="plain")  # a blueprint without notifications
    assert queued(escalation(workflow="plain", level="intervention")) == defaults
    blueprint("    []\n", name="empty-bp", workflow="empty")  # an explicit empty list: notify nobody
    assert queued(escalation(workflow="empty")) == []


def test_no_configuration_means_no_deliveries(db):
    assert services.notifications_queue(escalation=escalation(), event="created") == []
    assert not NotificationDelivery.objects.exists()


def test_a_malformed_stored_entry_is_skipped_without_breaking_the_escalation(db):
    """`dac apply` refuses bad entries; one stored before that check (or by hand) is only skipped."""
    from registry.models import Blueprint, WorkflowDefinition

    spec = {"governance": {"notifications": [{"channel": "pager", "number": "555"},
                                             {"channel": "email", "to": ["not-an-address"]},
                                             {"channel": "webhook", "url": "ftp://nope"},
                                             {"channel": "webhook", "url": "https://ok.example/hook",
                                              "levels": "approval"}]}}
    stored = Blueprint.objects.create(name="hand-made", spec=spec, spec_sha256="0" * 64)
    WorkflowDefinition.objects.create(key="deploy", name="deploy", blueprint=stored)
    assert queued(escalation()) == [("webhook", "https://ok.example/hook")]


def test_a_repeated_queue_call_creates_nothing_twice_and_sends_after_commit(db, django_capture_on_commit_callbacks):
    blueprint("""    - {channel: webhook, url: "https://hooks.example/a"}
    - {channel: email, to: [a@x.org]}
""")
    esc = escalation()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with transaction.atomic():
            first = services.notifications_queue(escalation=esc, event="created")
            assert NotificationDelivery.objects.count() == 2
    assert len(callbacks) == 1  # the tasks go out when the transaction commits, not inside it
    again = services.notifications_queue(escalation=esc, event="created")
    assert sorted(again) == sorted(first) and NotificationDelivery.objects.count() == 2
    resolved = services.notifications_queue(escalation=esc, event="resolved")
    assert len(resolved) == 2 and NotificationDelivery.objects.count() == 4
    with pytest.raises(ValueError):
        services.notifications_queue(escalation=esc, event="deleted")


# --- what they receive ---------------------------------------------------------------------------------

@override_settings(DAC_BASE_URL="https://dac.example")
def test_webhook_body_is_slack_compatible_with_the_escalation_and_links(db, receiver):
    esc = escalation(title="Deploy <prod> & celebrate")
    delivery = delivery_to(f"{receiver.url}/T0/B0", esc)
    assert services.notification_deliver(delivery_id=delivery.id) is None
    [request] = receiver.requests
    assert request["path"] == "/T0/B0"
    assert request["headers"]["X-DAC-Delivery"] == str(delivery.id)
    assert request["headers"]["X-DAC-Event"] == "governance.escalation.created"
    body = request["body"]
    assert set(body) == {"text", "escalation", "links"}
    assert body["text"] == ("[DAC] approval escalation: Deploy &lt;prod&gt; &amp; celebrate | workflow deploy"
                            " | pending | deadline 2030-05-01 10:00 UTC")
    assert body["escalation"] == escalation_as_dict(esc)
    assert body["links"] == {"console": f"https://dac.example/admin/governance/escalation/{esc.id}/change/",
                             "api": f"https://dac.example/api/v1/escalations/{esc.id}/"}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.tries, delivery.last_error) == ("sent", 1, "")
    assert delivery.sent_at is not None


def test_a_resolved_event_says_how_it_was_resolved(db, receiver):
    esc = escalation(status="resolved", resolution="approved", resolved_by="alice", resolved_at=timezone.now())
    services.notification_deliver(delivery_id=delivery_to(receiver.url, esc, event="resolved").id)
    [request] = receiver.requests
    assert request["headers"]["X-DAC-Event"] == "governance.escalation.resolved"
    assert "escalation resolved: Deploy to production | workflow deploy | approved by alice" in request["body"]["text"]
    assert request["body"]["escalation"]["resolution"] == "approved"


def test_email_goes_through_a_real_smtp_server(db):
    esc = escalation()
    delivery = NotificationDelivery.objects.create(escalation=esc, event="created", channel="email",
                                                   target="lead@x.org")
    with SmtpReceiver() as smtp, override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST=smtp.host, EMAIL_PORT=smtp.port,
            DEFAULT_FROM_EMAIL="dac@example.org", DAC_BASE_URL="https://dac.example"):
        assert services.notification_deliver(delivery_id=delivery.id) is None
    [message] = smtp.messages
    assert smtp.envelopes == [{"from": "dac@example.org", "to": ["lead@x.org"]}]
    assert message["Subject"] == "[DAC] approval: Deploy to production (pending)"
    assert message["To"] == "lead@x.org"
    assert message["X-DAC-Delivery"] == str(delivery.id)
    assert message["X-DAC-Event"] == "governance.escalation.created"
    text = message.get_content()
    for fact in ("Level:      approval", "Type:       production_deployment", "Workflow:   deploy",
                 "Deadline:   2030-05-01 10:00 UTC", "Approvers:  tech_lead",
                 f"https://dac.example/admin/governance/escalation/{esc.id}/change/",
                 f"https://dac.example/api/v1/escalations/{esc.id}/"):
        assert fact in text
    delivery.refresh_from_db()
    assert delivery.status == "sent"


def test_an_unreachable_smtp_server_is_a_recorded_failure(db):
    delivery = NotificationDelivery.objects.create(escalation=escalation(), event="expired", channel="email",
                                                   target="lead@x.org")
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                           EMAIL_PORT=free_port(), EMAIL_HOST_PASSWORD="smtp-pass-word"):
        assert services.notification_deliver(delivery_id=delivery.id) == 1.0
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.tries == 1
    assert "ConnectionRefusedError" in delivery.last_error and "smtp-pass-word" not in delivery.last_error


# --- failures and retries ---------------------------------------------------------------------------------

def test_a_failure_is_recorded_with_exponential_backoff(db):
    with HttpReceiver(status=500) as failing:
        delivery = delivery_to(f"{failing.url}/hook")
        before = timezone.now()
        assert services.notification_deliver(delivery_id=delivery.id) == 1.0
        delivery.refresh_from_db()
        assert (delivery.status, delivery.tries) == ("pending", 1)
        assert delivery.last_error == "HTTP 500 Internal Server Error: receiver says no"
        assert before + datetime.timedelta(seconds=1) <= delivery.next_try_at <= timezone.now() + datetime.timedelta(
            seconds=1)
        # Not due yet: a duplicate message sends nothing.
        assert services.notification_deliver(delivery_id=delivery.id) is None
        assert len(failing.requests) == 1
        due_now(delivery)
        assert services.notification_deliver(delivery_id=delivery.id) == 2.0
        due_now(delivery)
        assert services.notification_deliver(delivery_id=delivery.id) == 4.0
    assert [services.retry_countdown(n) for n in (1, 2, 3, 9, 10)] == [1.0, 2.0, 4.0, 256.0, 300.0]


def test_errors_never_keep_credentials_or_query_strings(db):
    delivery = delivery_to(f"http://bot:hunter2-pw@127.0.0.1:{free_port()}/T0/B0/secret-path?token=sekrit-token")
    assert services.notification_deliver(delivery_id=delivery.id) == 1.0
    delivery.refresh_from_db()
    assert "ConnectionError" in delivery.last_error
    for secret in ("hunter2-pw", "sekrit-token", "bot:"):
        assert secret not in delivery.last_error


def test_a_receiver_failing_twice_then_succeeding_ends_sent_after_three_tries(db):
    with HttpReceiver(fail_first=2) as flaky:
        delivery = delivery_to(flaky.url)
        assert services.notification_deliver(delivery_id=delivery.id) == 1.0
        due_now(delivery)
        assert services.notification_deliver(delivery_id=delivery.id) == 2.0
        due_now(delivery)
        assert services.notification_deliver(delivery_id=delivery.id) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.tries) == ("sent", 3)
    assert delivery.sent_at is not None
    assert {r["headers"]["X-DAC-Delivery"] for r in flaky.requests} == {str(delivery.id)}
    assert len(flaky.requests) == 3


@override_settings(DAC_NOTIFY_MAX_TRIES=3)
def test_after_max_tries_a_delivery_is_failed_and_never_sent_again(db):
    with HttpReceiver(status=503) as down:
        delivery = delivery_to(down.url)
        for expected in (1.0, 2.0, None):
            assert services.notification_deliver(delivery_id=delivery.id) == expected
            due_now(delivery)
        assert services.notification_deliver(delivery_id=delivery.id) is None
        assert len(down.requests) == 3
    delivery.refresh_from_db()
    assert (delivery.status, delivery.tries) == ("failed", 3)
    assert delivery.last_error.startswith("HTTP 503")
    assert services.notifications_reconcile() == {"notifications_resent": 0}


def test_a_claimed_delivery_is_not_sent_by_a_second_message(db, receiver):
    delivery = delivery_to(receiver.url)
    # Claimed by another worker that is sending it now: its lease is in the future.
    NotificationDelivery.objects.filter(id=delivery.id).update(
        tries=1, next_try_at=timezone.now() + datetime.timedelta(seconds=services.LEASE_SECONDS))
    assert services.notification_deliver(delivery_id=delivery.id) is None
    assert receiver.requests == []
    assert services.notification_deliver(delivery_id=10**12) is None  # gone: nothing to do


# --- the reconciler ----------------------------------------------------------------------------------

def test_reconcile_resends_only_pending_deliveries_whose_message_was_lost(db, receiver,
                                                                          django_capture_on_commit_callbacks):
    esc = escalation()
    long_ago = timezone.now() - datetime.timedelta(minutes=5)
    lost = delivery_to(f"{receiver.url}/lost", esc)
    NotificationDelivery.objects.filter(id=lost.id).update(next_try_at=long_ago)
    delivery_to(f"{receiver.url}/just-queued", esc)  # its message is still on the way
    for status in ("sent", "failed"):
        done = delivery_to(f"{receiver.url}/{status}", esc)
        NotificationDelivery.objects.filter(id=done.id).update(status=status, next_try_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.notifications_reconcile() == {"notifications_resent": 1}
    assert len(callbacks) == 1
    lost.refresh_from_db()
    assert lost.next_try_at > long_ago  # marked due now: the next pass leaves it to its new message
    # The periodic reconcile task includes this pass.
    from orchestration.tasks import reconcile

    assert reconcile()["notifications_resent"] == 0
    # The re-sent message finds it due and sends it.
    assert services.notification_deliver(delivery_id=lost.id) is None
    assert [r["path"] for r in receiver.requests] == ["/lost"]

