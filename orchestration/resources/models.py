"""Concurrency pools and the usage ledger. PostgreSQL holds both; Redis holds only rate-limit buckets."""
from django.db import models
from django.utils import timezone


class ConcurrencyPool(models.Model):
    """One limit on running instances (DESIGN §6.6) and how many of its slots are taken.

    `key` names the limit: `global`, `type:<workflow type>`, `workflow:<id>` (max_concurrent) or
    `key:<workflow id>:<rendered concurrency key>`. `in_use` moves only under the admission lock,
    in the transaction that admits or ends an instance; the reconciler recounts it from the
    instances that hold it.
    """

    key = models.CharField(max_length=300, primary_key=True)
    limit = models.PositiveIntegerField()
    in_use = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.key} {self.in_use}/{self.limit}"


class UsageLedger(models.Model):
    """Tokens and USD spent, per minute and workflow: rolled up by day, workflow and type on read,
    and summed over the last hour for a type's token quota. Written in the transaction that records
    the attempt, so each attempt counts once."""

    minute = models.DateTimeField()
    workflow = models.CharField(max_length=100)
    workflow_type = models.CharField(max_length=20, blank=True)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["minute", "workflow"], name="uniq_usage_minute_workflow")]
        indexes = [models.Index(fields=["workflow_type", "minute"], name="usage_type_minute")]

    def __str__(self):
        return f"{self.minute:%Y-%m-%d %H:%M} {self.workflow}"
