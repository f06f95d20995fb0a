"""Writes to the registry: applying workflow files and blueprints, all or nothing."""
from dataclasses import dataclass, field

from django.db import connection, transaction

from governance.audit import audit_record

from . import progress, selectors
from . import spec as specs
from .models import Agent, Blueprint, DefinitionStatus, WorkflowDefinition, WorkflowVersion
from .signals import definitions_applied

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass
class ApplyReport:
    kind: str
    # [{"id", "version", "changed", "action"}] and [{"name", "changed", "action"}], where `action`
    # is what applying did: "created" (new), "updated" (changed) or "unchanged".
    workflows: list = field(default_factory=list)
    agents: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def as_dict(self):
        return {"kind": self.kind, "workflows": self.workflows, "agents": self.agents,
                "warnings": [w.as_dict() for w in self.warnings]}


def compile_path(path):
    """Validate a file against what is registered; raises SpecInvalid."""
    return _with_approver_groups(specs.compile_file(
        path, known_workflows=selectors.known_workflow_keys(), known_agents=selectors.known_agents(),
        known_webhooks=selectors.known_webhooks(), known_buckets=_known_buckets()), str(path))


def compile_source(text, *, file="<request>", fmt=None):
    return _with_approver_groups(specs.compile_text(
        text, file, fmt=fmt, known_workflows=selectors.known_workflow_keys(), known_agents=selectors.known_agents(),
        known_webhooks=selectors.known_webhooks(), known_buckets=_known_buckets()), file)


def _known_buckets():
    """The rate-limit buckets in force as layers (origin, {name: limit}), weakest first: the
    environment's, then each applied blueprint's. Read now, not from the workers' cache, so a
    blueprint applied a moment ago counts."""
    from orchestration.resources.config import env_buckets

    layers = [(None, {name: b["limit"] for name, b in env_buckets().items()})]
    for name, spec in Blueprint.objects.order_by("updated_at").values_list("name", "spec"):
        rate_limits = ((spec or {}).get("coordination") or {}).get("rate_limits") or {}
        layers.append((name, {bucket: b["limit"] for bucket, b in rate_limits.items()
                                if isinstance(b, dict) and "limit" in b}))
    return layers


def _with_approver_groups(compiled, file):
    """Approver groups are Django groups: checked here, where the database is at hand."""
    from governance.escalations.groups import approver_group_problems

    errors = approver_group_problems(compiled, blueprint_file=file)
    if errors:
        raise specs.SpecInvalid(errors, compiled.warnings)
    return compiled


@transaction.atomic
def definitions_apply(*, compiled, actor):
    """Register everything in a compiled document in one transaction.

    Identical specs are no-ops; a changed spec becomes version n+1 (running instances keep theirs).
    """
    report = ApplyReport(kind=compiled.kind, warnings=compiled.warnings)
    blueprint = _blueprint_upsert(compiled.blueprint) if compiled.blueprint else None
    for agent in compiled.agents:
        report.agents.append(_agent_upsert(agent))
    for i, doc in enumerate(compiled.workflows):
        progress.report("registering", i, len(compiled.workflows))
        report.workflows.append(_workflow_upsert(doc, blueprint))
    # Triggers, schedules and auto_spawn rules follow the definitions in this same transaction.
    definitions_applied.send(sender=ApplyReport, compiled=compiled, blueprint=blueprint)
    changed = [w for w in report.workflows if w["changed"]] + [a for a in report.agents if a["changed"]]
    if changed:
        target = blueprint.name if blueprint else report.workflows[0]["id"]
        audit_record(actor=actor, verb="definitions.apply", target_type=compiled.kind, target_id=target,
                     details={"workflows": report.workflows, "agents": report.agents})
    return report


def _blueprint_upsert(data):
    sha = specs.spec_sha256(data)
    blueprint, _ = Blueprint.objects.update_or_create(
        name=data["name"], defaults={"description": data["description"], "spec": data, "spec_sha256": sha}
    )
    return blueprint


def _agent_upsert(data):
    existing = Agent.objects.filter(name=data["name"]).first()
    fields = {"type": data["type"], "risk": data["risk"], "description": data["description"],
              "capabilities": data["capabilities"]}
    if existing and all(getattr(existing, k) == v for k, v in fields.items()):
        return {"name": data["name"], "changed": False, "action": UNCHANGED}
    Agent.objects.update_or_create(name=data["name"], defaults=fields)
    return {"name": data["name"], "changed": True, "action": UPDATED if existing else CREATED}


def _workflow_upsert(doc, blueprint):
    spec = doc.spec
    sha = specs.spec_sha256(spec)
    # Serialise concurrent applies of one key, including its first (the row may not exist yet).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"dac-workflow:{spec['id']}"])
    definition = WorkflowDefinition.objects.select_for_update().filter(key=spec["id"]).first()
    latest = definition.latest_version if definition else None
    if latest and latest.spec_sha256 == sha:
        return {"id": spec["id"], "version": latest.number, "changed": False, "action": UNCHANGED}
    summary = {
        "name": spec["name"], "type": spec["type"], "description": spec["description"], "owner": spec["owner"],
        "tags": spec["tags"], "inputs": spec["inputs"], "outputs": spec["outputs"],
        "trigger_types": sorted({t["type"] for t in spec["triggers"]}),
        "status": DefinitionStatus.ACTIVE if spec["steps"] else DefinitionStatus.REGISTERED,
    }
    if blueprint:
        summary["blueprint"] = blueprint
    if definition is None:
        definition = WorkflowDefinition.objects.create(key=spec["id"], **summary)
    else:
        for name, value in summary.items():
            setattr(definition, name, value)
    number = (latest.number if latest else 0) + 1
    version = WorkflowVersion.objects.create(
        definition=definition, number=number, spec=spec, spec_sha256=sha, source=doc.source, source_file=doc.file
    )
    definition.latest_version = version
    definition.save()
    return {"id": spec["id"], "version": number, "changed": True, "action": UPDATED if latest else CREATED}
