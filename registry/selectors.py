"""Reads of the registry."""
from .models import Agent, DefinitionStatus, WorkflowDefinition


def known_workflow_keys():
    return set(WorkflowDefinition.objects.values_list("key", flat=True))


def known_webhooks():
    """{path: workflow id} of the webhook triggers of registered workflows' latest versions."""
    owners = {}
    for key, spec in WorkflowDefinition.objects.filter(trigger_types__contains=["webhook"]).values_list(
            "key", "latest_version__spec"):
        for trigger in (spec or {}).get("triggers") or []:
            if trigger.get("type") == "webhook" and trigger.get("path"):
                owners[trigger["path"]] = key
    return owners


def known_agents():
    return {a.name: {"capabilities": a.capabilities} for a in Agent.objects.all()}


def definition_get(key):
    """The definition with its latest version, or None."""
    return WorkflowDefinition.objects.select_related("latest_version").filter(key=key).first()


def definition_list(*, type=None, tag=None, input=None, output=None, trigger=None):
    """One query; the array filters use the GIN indexes of migration 0002. A version's source
    text is not needed to list it, so it is not read."""
    qs = WorkflowDefinition.objects.select_related("latest_version").defer(
        "latest_version__source", "latest_version__source_file")
    if type:
        qs = qs.filter(type=type)
    if tag:
        qs = qs.filter(tags__contains=[tag])
    if input:
        qs = qs.filter(inputs__contains=[input])
    if output:
        qs = qs.filter(outputs__contains=[output])
    if trigger:
        qs = qs.filter(trigger_types__contains=[trigger])
    return qs


def definition_accepts_runs(definition):
    """Active, with a registered version (its spec is not read: see definition_is_startable)."""
    return definition.status == DefinitionStatus.ACTIVE and definition.latest_version_id is not None


def definition_is_startable(definition):
    """A definition with steps in its latest version (a step-less blueprint entry is only listed)."""
    version = definition.latest_version
    return definition.status == DefinitionStatus.ACTIVE and version is not None and bool(version.spec.get("steps"))
