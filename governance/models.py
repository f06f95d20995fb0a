"""Governance records: the append-only, hash-chained audit log."""
from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One workflow or governance action. Rows are never updated; each hash covers the previous."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150)
    verb = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=100, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.verb} {self.target_type}:{self.target_id}"

# The escalation and notification packages keep their models beside their services.
from .escalations.models import Decision, Escalation  # noqa: E402, F401
from .notifications.models import NotificationDelivery  # noqa: E402, F401
