"""Governance records: the append-only, hash-chained audit log."""
from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One workflow or governance action. The engine only inserts rows (unsealed: seq, prev_hash and
    hash NULL); the sealer (`governance.audit.audit_seal`) later chains them: seq, the previous
    row's hash, and a hash over the content that covers it. Content is never updated."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150)
    verb = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=100, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    # Set together by the sealer (NULL together while unsealed). digest_version 1: a row chained at
    # insert time before sealing existed (its hash does not cover seq); 2: sealed, the hash covers seq.
    seq = models.BigIntegerField(null=True, blank=True, unique=True)
    digest_version = models.PositiveSmallIntegerField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (NULL: unsealed)
    hash = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"
        indexes = [
            # The sealer's queue: unsealed rows in id order, small however long the log grows.
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="governance_audit_unsealed"),
        ]
        constraints = [
            models.CheckConstraint(
                name="governance_audit_sealed_together",
                condition=(
                    models.Q(seq__isnull=True, digest_version__isnull=True, prev_hash__isnull=True,
                             hash__isnull=True)
                    | models.Q(seq__isnull=False, digest_version__isnull=False, prev_hash__isnull=False,
                               hash__isnull=False)
                ),
            ),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.verb} {self.target_type}:{self.target_id}"

    @property
    def sealed(self):
        return self.seq is not None

# The escalation and notification packages keep their models beside their services.
from .escalations.models import Decision, Escalation  # noqa: E402, F401
from .notifications.models import NotificationDelivery  # noqa: E402, F401
