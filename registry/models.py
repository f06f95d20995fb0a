"""Registered workflow definitions, their immutable versions, agents and blueprints."""
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class DefinitionStatus(models.TextChoices):
    ACTIVE = "active", "active"
    # Listed and discoverable but not startable: a blueprint entry without steps.
    REGISTERED = "registered", "registered"


class WorkflowDefinition(models.Model):
    """The stable identity of a workflow; its content lives in versions."""

    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=32, blank=True, db_index=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=DefinitionStatus.choices, default=DefinitionStatus.ACTIVE)
    owner = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(default=list, blank=True)
    outputs = models.JSONField(default=list, blank=True)
    trigger_types = models.JSONField(default=list, blank=True)
    latest_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    blueprint = models.ForeignKey("Blueprint", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        # Capability search (`dac find`, list filters) is `@>` on these arrays: GIN keeps it
        # an index lookup over 10,000 definitions.
        indexes = [
            GinIndex(fields=[name], opclasses=["jsonb_path_ops"], name=f"registry_def_{name}_gin")
            for name in ("inputs", "outputs", "tags", "trigger_types")
        ]

    def __str__(self):
        return self.key


class WorkflowVersion(models.Model):
    """One immutable, normalised spec of a definition; instances pin the version they run."""

    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    spec_sha256 = models.CharField(max_length=64)
    source = models.TextField(blank=True)
    source_file = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["definition_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "number"], name="uniq_definition_version_number"),
        ]

    def __str__(self):
        return f"{self.definition.key} v{self.number}"


class AgentType(models.TextChoices):
    LLM = "LLM", "LLM"
    RULE = "RULE", "rule"
    API = "API", "API"
    SCRIPT = "SCRIPT", "script"


class AgentRisk(models.TextChoices):
    AUTO = "AUTO", "auto"
    APPROVAL_REQUIRED = "APPROVAL_REQUIRED", "approval required"


class Agent(models.Model):
    """A named worker of capabilities (seed 004): each capability maps to an action."""

    name = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=16, choices=AgentType.choices, default=AgentType.RULE)
    risk = models.CharField(max_length=32, choices=AgentRisk.choices, default=AgentRisk.AUTO)
    description = models.TextField(blank=True)
    # {capability_name: {"action": "...", "input_schema": {...}, "output_schema": {...}}}
    capabilities = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Blueprint(models.Model):
    """A whole DAC applied from one file: its coordination and governance sections."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    spec = models.JSONField()
    spec_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name
