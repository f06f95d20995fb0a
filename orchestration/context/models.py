"""Shared context (DESIGN §6.5): durable keys in PostgreSQL, served from Redis."""
from django.db import models


class SharedValue(models.Model):
    scope = models.CharField(max_length=200)
    key = models.CharField(max_length=200)
    value = models.JSONField(null=True)
    # Grows with every write; compare-and-set writes give the version they read.
    version = models.PositiveBigIntegerField(default=1)
    expires_at = models.DateTimeField(null=True, blank=True)
    # A deleted key keeps its row so its version keeps growing (no ABA for compare-and-set).
    deleted = models.BooleanField(default=False)
    source_workflow = models.CharField(max_length=100, blank=True)
    source_instance = models.UUIDField(null=True, blank=True)
    updated_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "key"]
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="uniq_shared_scope_key")]

    def __str__(self):
        return f"{self.scope}/{self.key}"
