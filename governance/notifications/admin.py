"""Notification deliveries in the console: every message about an escalation, whether it went out,
how often it was tried and why it failed. Read-only: deliveries change only through the services.

`governance/admin.py` (the module Django autodiscovers) imports this one; `NotificationDeliveryInline`
goes on the escalation's page.
"""
from django.contrib import admin

from governance.admin import EMPTY, ReadOnlyModelAdmin, ReadOnlyTabularInline, admin_link, status_badge

from .channels import redact_url
from .models import Channel, NotificationDelivery

ERROR_COLUMN_CHARS = 120
BADGE_AS = {"sent": "completed"}


def _target(delivery):
    """Webhook URLs may hold tokens in their query or credentials: never shown."""
    return redact_url(delivery.target) if delivery.channel == Channel.WEBHOOK else delivery.target


def _short(text, limit=ERROR_COLUMN_CHARS):
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class DeliveryColumns:
    """Columns shared by the deliveries page and the inline on an escalation."""

    @admin.display(description="target", ordering="target")
    def target_shown(self, delivery):
        return _target(delivery)

    @admin.display(description="status", ordering="status")
    def status_shown(self, delivery):
        # Coloured like the engine's statuses: sent as completed, failed as failed.
        return status_badge(BADGE_AS.get(delivery.status, delivery.status), delivery.status)

    @admin.display(description="last error")
    def last_error_short(self, delivery):
        return _short(delivery.last_error)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(DeliveryColumns, ReadOnlyModelAdmin):
    list_display = ("created_at", "escalation_link", "event", "channel", "target_shown", "status_shown", "tries",
                    "last_error_short", "sent_at")
    list_filter = ("status", "channel", "event")
    search_fields = ("target", "escalation__title", "escalation__workflow")
    list_select_related = ("escalation",)
    ordering = ("-created_at", "-id")
    list_per_page = 100
    fields = ("escalation_link", "event", "channel", "target_shown", "status_shown", "tries", "last_error",
              "created_at", "next_try_at", "sent_at")

    @admin.display(description="escalation", ordering="escalation__created_at")
    def escalation_link(self, delivery):
        escalation = delivery.escalation
        if escalation is None:
            return EMPTY
        label = f"{escalation.level}: {escalation.title}"
        return admin_link("admin:governance_escalation_change", [escalation.pk], label)


class NotificationDeliveryInline(DeliveryColumns, ReadOnlyTabularInline):
    """The deliveries of one escalation, on its page."""

    model = NotificationDelivery
    fk_name = "escalation"
    fields = ("event", "channel", "target_shown", "status_shown", "tries", "last_error_short", "created_at",
              "next_try_at", "sent_at")
    ordering = ("created_at", "id")
    show_change_link = True
    verbose_name = "notification"
    verbose_name_plural = "notifications"
