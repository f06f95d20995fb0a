"""Reads of engine state, in the shapes the CLI and the API share (DESIGN §8)."""
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, Q

from dacproject.ids import as_uuid

from .models import StepItem, StepRun, WorkflowInstance
from .states import INSTANCE_TERMINAL, STEP_TERMINAL, InstanceStatus, StepStatus


def _instances():
    children = WorkflowInstance.objects.only("id", "parent_id", "created_at").order_by("created_at")
    return WorkflowInstance.objects.select_related("definition", "version", "created_by").prefetch_related(
        Prefetch("children", queryset=children, to_attr="child_list"))


def instance_get(instance_id):
    try:
        return _instances().filter(id=instance_id).first()
    except (ValidationError, ValueError):
        return None


def instance_list(*, status=None, workflow=None, parent=None, correlation_id=None):
    """Newest first; a malformed `parent` id matches nothing."""
    qs = _instances()
    if status:
        qs = qs.filter(status=status)
    if workflow:
        qs = qs.filter(definition__key=workflow)
    if parent:
        parent_id = as_uuid(parent)
        qs = qs.filter(parent_id=parent_id) if parent_id else qs.none()
    if correlation_id:
        qs = qs.filter(correlation_id=correlation_id)
    return qs


def instance_is_finished(instance_id):
    return WorkflowInstance.objects.filter(id=instance_id, status__in=INSTANCE_TERMINAL).exists()


def instance_progress(instance_id):
    """`(status, steps finished, steps)` of an instance in one query (the CLI's live progress line);
    None when there is no such instance."""
    return (WorkflowInstance.objects.filter(id=instance_id)
            .annotate(steps=Count("step_runs"), done=Count("step_runs", filter=Q(step_runs__status__in=STEP_TERMINAL)))
            .values_list("status", "done", "steps").first())


def _iso(value):
    return value.isoformat() if value else None


def step_run_as_dict(run):
    return {
        "step_id": run.step_id,
        "status": run.status,
        "attempts": run.attempts,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "output": run.output,
        "error": run.error,
    }


def instance_summary(instance, *, with_result=True):
    """`dac run`'s output: {id, workflow, status}, and `result` once it waited for the end."""
    data = {"id": str(instance.id), "workflow": instance.definition.key, "status": instance.status}
    if with_result:
        data["result"] = instance.result
    return data


def child_ids(instance):
    children = getattr(instance, "child_list", None)
    if children is None:
        children = WorkflowInstance.objects.filter(parent_id=instance.id).order_by("created_at").only("id")
    return [str(c.id) for c in children]


def instance_as_dict(instance, *, with_steps=True):
    data = {
        "id": str(instance.id),
        "workflow": instance.definition.key,
        "version": instance.version.number,
        "status": instance.status,
        "priority": instance.priority,
        "result": instance.result,
        "error": instance.error,
        "parent": str(instance.parent_id) if instance.parent_id else None,
        "children": child_ids(instance),
        "trigger": instance.trigger or {"type": "manual"},
        "correlation_id": instance.correlation_id,
        "created_by": instance.created_by.get_username() if instance.created_by_id else None,
        "created_at": _iso(instance.created_at),
        "started_at": _iso(instance.started_at),
        "finished_at": _iso(instance.finished_at),
    }
    if instance.status == InstanceStatus.QUEUED:  # only then: the §8 shape is unchanged otherwise
        data["queue"] = instance_queue(instance)
    if instance_spent(instance):  # only then: the §8 shape is unchanged for instances that spent nothing
        data["usage"] = instance_usage(instance)
    if with_steps:
        data["steps"] = [step_run_as_dict(r) for r in ordered_step_runs(instance)]
    return data


def instance_queue(instance):
    """What holds a queued instance: {limit, key, max, position} (position 1 starts next), or for a
    token quota {limit: "api_tokens", type, share, used}; None unless it is queued."""
    if instance.status != InstanceStatus.QUEUED or not instance.queued_reason:
        return None
    reason = dict(instance.queued_reason)
    key = reason.get("key")
    if key:
        ahead = WorkflowInstance.objects.filter(
            Q(priority__gt=instance.priority) | Q(priority=instance.priority, created_at__lt=instance.created_at),
            status=InstanceStatus.QUEUED, holds_slots=False, slot_keys__contains=[key])
        reason["position"] = ahead.count() + 1
    return reason


def instance_spent(instance):
    return bool(instance.tokens_in or instance.tokens_out or instance.cost_usd)


def instance_usage(instance):
    """Tokens and USD of all its attempts (the cost as a string: exact, as the ledger keeps it)."""
    return {"tokens_in": instance.tokens_in, "tokens_out": instance.tokens_out, "cost_usd": str(instance.cost_usd)}


def queue_description(queue):
    """'max_concurrent (workflow:x, 5 at most), position 2': what an `instance_queue` says, in words."""
    if queue.get("limit") == "api_tokens":
        return f"the api_tokens share of type {queue.get('type')} ({queue.get('used')} of {queue.get('share')} used)"
    return f"{queue['limit']} ({queue['key']}, {queue['max']} at most), position {queue.get('position')}"


def ordered_step_runs(instance):
    """The instance's step runs in the order the definition lists its steps."""
    order = {sid: i for i, sid in enumerate(s["id"] for s in instance.version.spec.get("steps") or [])}
    return sorted(StepRun.objects.filter(instance=instance), key=lambda r: order.get(r.step_id, 0))


def step_item_progress(instance):
    """{step_id: (done, total)} of the instance's foreach steps, in one query (done: completed items)."""
    rows = (StepItem.objects.filter(step_run__instance=instance).values("step_run__step_id")
            .annotate(total=Count("id"), done=Count("id", filter=Q(status=StepStatus.COMPLETED))).order_by())
    return {row["step_run__step_id"]: (row["done"], row["total"]) for row in rows}
