"""Notification deliveries in the console: read-only, filterable, and never showing a webhook's token."""
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from governance.escalations.models import Escalation
from governance.notifications.admin import NotificationDeliveryAdmin, NotificationDeliveryInline
from governance.notifications.models import NotificationDelivery


def escalation():
    return Escalation.objects.create(level="approval", title="Deploy to production", workflow="deploy")


def test_deliveries_page_is_read_only_filterable_and_hides_webhook_tokens(admin_client):
    assert NotificationDeliveryAdmin(NotificationDelivery, admin.site).check() == []
    assert NotificationDeliveryInline(Escalation, admin.site).check() == []
    esc = escalation()
    secret_url = "https://user:pw-secret@hooks.example/T0/B0?token=tok-secret"
    hook = NotificationDelivery.objects.create(escalation=esc, event="created", channel="webhook", target=secret_url,
                                               status="failed", tries=5, last_error="HTTP 500 Oops")
    NotificationDelivery.objects.create(escalation=esc, event="resolved", channel="email", target="lead@x.org",
                                        status="sent", tries=1, sent_at=timezone.now())
    url = reverse("admin:governance_notificationdelivery_changelist")
    content = admin_client.get(url).content.decode()
    assert "https://hooks.example/T0/B0" in content and "lead@x.org" in content and "HTTP 500 Oops" in content
    assert "tok-secret" not in content and "pw-secret" not in content
    assert "Deploy to production" in content
    for query, shown, hidden in (({"status": "failed"}, "hooks.example", "lead@x.org"),
                                 ({"channel": "email"}, "lead@x.org", "hooks.example"),
                                 ({"event": "resolved"}, "lead@x.org", "hooks.example")):
        content = admin_client.get(url, query).content.decode()
        assert shown in content and hidden not in content
    page = admin_client.get(reverse("admin:governance_notificationdelivery_change", args=[hook.id]))
    assert page.status_code == 200 and "tok-secret" not in page.content.decode()
    assert admin_client.get(reverse("admin:governance_notificationdelivery_add")).status_code == 403
