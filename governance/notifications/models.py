"""Every notification delivery, recorded whether it succeeded or not."""
from django.db import models
from django.utils import timezone


class Channel(models.TextChoices):
    WEBHOOK = "webhook", "webhook"
    EMAIL = "email", "email"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"  # retries exhausted


class NotificationDelivery(models.Model):
    """One message about one escalation event to one target."""

    escalation = models.ForeignKey("governance.Escalation", on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=16)  # created | resolved | expired
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    tries = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_try_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "notification deliveries"
        indexes = [models.Index(fields=["status", "next_try_at"], name="delivery_status_next_try")]
        constraints = [
            models.UniqueConstraint(fields=["escalation", "event", "channel", "target"], name="uniq_delivery"),
        ]

    def __str__(self):
        # A webhook URL's credentials and query (where tokens live) never reach a page title or a log.
        from .channels import redact_url

        target = redact_url(self.target) if self.channel == Channel.WEBHOOK else self.target
        return f"{self.channel} {target}: {self.event} ({self.status})"
