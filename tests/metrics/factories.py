"""Rows with known times, built on workflows registered through the registry service: the metrics
read what the engine writes, and these tests need durations they can state exactly."""
from decimal import Decimal

from django.utils import timezone

from governance.escalations.models import Escalation
from orchestration.actions.registry import Usage
from orchestration.engine.plan import plan_for_version_id
from orchestration.events.models import Event
from orchestration.models import StepAttempt, StepRun, WorkflowInstance
from orchestration.resources.ledger import usage_record
from registry.models import WorkflowDefinition
from tests.support.helpers import apply_spec

MS = timezone.timedelta(milliseconds=1)


def workflow(key, steps=("echo",)):
    """A registered workflow whose steps run the given actions (step ids s0, s1, ...)."""
    apply_spec({"id": key, "type": "operations",
                "steps": [{"id": f"s{n}", "action": action} for n, action in enumerate(steps)]})
    return WorkflowDefinition.objects.get(key=key)


def instance(definition, *, status="completed", ago=timezone.timedelta(minutes=5), duration_ms=None,
             tokens=(0, 0), cost="0", error=None):
    """An instance created `ago`, started at once and, with `duration_ms`, finished that much later;
    its usage is counted by the engine's ledger service (instance totals and the minute row)."""
    created = timezone.now() - ago
    version = definition.versions.order_by("-number").first()
    finished = created + duration_ms * MS if duration_ms is not None else None
    inst = WorkflowInstance.objects.create(
        definition=definition, version=version, spec_sha256=version.spec_sha256, status=status, created_at=created,
        started_at=created, finished_at=finished, error=error)
    usage_record(instance=inst, plan=plan_for_version_id(version.id),
                 usage=Usage(tokens_in=tokens[0], tokens_out=tokens[1], cost_usd=Decimal(cost)))
    return inst


def attempt(inst, step_id, *, status="succeeded", duration_ms=100, number=1):
    run, _ = StepRun.objects.get_or_create(instance=inst, step_id=step_id)
    started = timezone.now() - timezone.timedelta(minutes=1)
    return StepAttempt.objects.create(step_run=run, number=number, status=status, started_at=started,
                                      finished_at=started + duration_ms * MS)


def decision(inst, *, response_ms, resolution="approved", by="alice", level="approval"):
    """An approval gate of `inst` decided `response_ms` after it was opened."""
    opened = timezone.now() - timezone.timedelta(minutes=10)
    return Escalation.objects.create(
        title="ship?", workflow=inst.definition.key, instance=inst, level=level, status="resolved",
        resolution=resolution, resolved_by=by, created_at=opened, resolved_at=opened + response_ms * MS)


def pending(inst, *, level="approval", ago=timezone.timedelta(minutes=1)):
    return Escalation.objects.create(title=f"{level} please", workflow=inst.definition.key, instance=inst,
                                     level=level, created_at=timezone.now() - ago)


def events(event_type, count):
    Event.objects.bulk_create(Event(event_type=event_type, timestamp=timezone.now()) for _ in range(count))
