"""Instance lifecycle services: start, pause, resume, terminate, retry, approve, time out."""
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from dacproject.ids import uuid7
from dacproject.nul import UNSTORABLE, unstorable_path
from governance.audit import actor_parts, audit_record
from orchestration.events.publish import publish
from orchestration.models import StepRun, WorkflowInstance
from orchestration.resources import admission as slots
from orchestration.resources import idempotency
from orchestration.states import (
    INSTANCE_TERMINAL,
    IllegalTransition,
)
from orchestration.states import (
    InstanceStatus as I,
)
from orchestration.states import (
    StepStatus as S,
)
from registry.models import DefinitionStatus, WorkflowDefinition, WorkflowVersion
from registry.spec import spec_sha256

from . import admission, lifecycle
from .advance import advance, dispatch_for, finish_failed, plainly_ready, set_instance_status
from .approvals import Governance
from .cascade import stop_instance
from .effects import Effects
from .errors import Conflict, InvalidRequest, NotFound
from .plan import plan_for_version_id
from .steps import continue_inline
from .transitions import lock_instance, prepared_cursor, rows_insert, save_state

MANUAL = {"type": "manual"}


@dataclass(frozen=True)
class Origin:
    """What started an instance besides its actor (DESIGN §2 `trigger`, §6.1 correlation, §6.3).

    `correlation_id` defaults to the new instance's own id; a spawned child names its parent's
    step, item, attempt and restart, which together make the child's creation idempotent.
    """

    trigger: dict | None = None
    trigger_key: str = ""
    instance_id: uuid.UUID | None = None  # chosen by the caller when it must refer to it first
    correlation_id: str = ""
    parent_id: object = None
    parent_step_run_id: int | None = None
    parent_item_index: int | None = None
    spawn_attempt: int | None = None
    spawn_restart: int | None = None


def instance_start(*, workflow, context=None, actor=None, priority=None, origin=None, inline=None,
                   definition=None, savepoint=True, idempotency_key=None):
    """Create an instance pinned to the definition's latest version and dispatch its first steps,
    or leave it `queued` when a concurrency limit holds it (DESIGN §6.6).

    With `inline` (an `Inline` of the calling task), one first step may be claimed for that task
    instead of dispatched: it is `instance.inline_claim` (else None), for the task to run.
    `definition` (from `definition_for_start`) saves looking it up; `savepoint=False` is for a
    caller whose own transaction is undone as a whole when the start fails. With
    `idempotency_key`, a key seen in the last 24 h returns the instance it started
    (`instance.replayed` is then True) and starts nothing.
    """
    with transaction.atomic(savepoint=savepoint):
        definition = definition or definition_for_start(workflow)
        if idempotency_key is not None and definition is not None:
            started = idempotency.start_key_claim(key=idempotency_key, workflow=workflow)
            if started is not None:
                instance = WorkflowInstance.objects.select_related("definition").get(id=started)
                instance.replayed, instance.inline_claim = True, None
                return instance
        instance = _start(workflow, context, actor, priority, origin or Origin(), inline, definition)
        if idempotency_key is not None:
            idempotency.start_key_record(key=idempotency_key, workflow=workflow, instance_id=instance.id)
        return instance


_DEFINITION_FIELDS = WorkflowDefinition._meta.concrete_fields
_VERSION_FIELDS = [f for f in WorkflowVersion._meta.concrete_fields if f.attname not in ("spec", "source")]
_DEFINITION_SQL = (
    f"SELECT {', '.join(f'd.{f.column}' for f in _DEFINITION_FIELDS)}, "
    f"{', '.join(f'v.{f.column}' for f in _VERSION_FIELDS)} "
    f"FROM {WorkflowDefinition._meta.db_table} AS d LEFT JOIN {WorkflowVersion._meta.db_table} AS v "
    f"ON v.id = d.latest_version_id WHERE d.key = %s"
)


def definition_for_start(workflow):
    """The definition with its latest version (its spec and source deferred: the spec comes from
    the plan cache), or None: what `select_related("latest_version")` loads, read with one prepared
    statement, as every start reads it."""
    with prepared_cursor() as cursor:
        cursor.execute(_DEFINITION_SQL, [workflow])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_DEFINITION_FIELDS)
    definition = _from_row(WorkflowDefinition, _DEFINITION_FIELDS, row[:split])
    version_row = row[split:]
    definition.latest_version = (_from_row(WorkflowVersion, _VERSION_FIELDS, version_row)
                                 if version_row[0] is not None else None)
    return definition


def _from_row(model, fields, values):
    values = [f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
              for f, v in zip(fields, values, strict=True)]
    return model.from_db(connection.alias, [f.attname for f in fields], values)


def _start(workflow, context, actor, priority, origin, inline, definition):
    if definition is None:
        raise NotFound(f"workflow '{workflow}' is not registered")
    version = definition.latest_version
    if definition.status != DefinitionStatus.ACTIVE or version is None:
        raise InvalidRequest(f"workflow '{workflow}' has no steps: it is registered but cannot be started")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise InvalidRequest("context must be a JSON object")
    where = unstorable_path(context, "context")
    if where:
        raise InvalidRequest(f"{where} {UNSTORABLE}")
    plan = _verified_plan(workflow, version)
    if not plan.steps:
        raise InvalidRequest(f"workflow '{workflow}' has no steps: it is registered but cannot be started")
    instance_id = origin.instance_id or uuid7()
    trigger = origin.trigger or MANUAL
    pools = _pools(workflow, plan, context, trigger)
    verdict = admission.admit(pools, newcomer=instance_id) if pools else admission.ADMITTED
    now = timezone.now()
    user, _ = actor_parts(actor)
    timeout = plan.spec.get("timeout_minutes")
    instance = WorkflowInstance(
        id=instance_id, created_at=now, definition=definition, version=version, spec_sha256=version.spec_sha256,
        status=I.RUNNING if verdict is admission.ADMITTED else I.PENDING, context=context,
        priority=plan.spec["priority"] if priority is None else priority, created_by=user,
        started_at=now if verdict is admission.ADMITTED else None,
        deadline_at=now + timezone.timedelta(minutes=timeout) if timeout else None,
        trigger=trigger, trigger_key=origin.trigger_key,
        correlation_id=origin.correlation_id or str(instance_id), parent_id=origin.parent_id,
        parent_step_run_id=origin.parent_step_run_id, parent_item_index=origin.parent_item_index,
        spawn_attempt=origin.spawn_attempt, spawn_restart=origin.spawn_restart,
        slot_keys=[p.key for p in pools], holds_slots=bool(pools) and verdict is admission.ADMITTED,
    )
    rows_insert([instance])
    if verdict is not admission.ADMITTED:
        return _start_held(instance, plan, verdict, actor, workflow, version)
    # Steps with nothing to wait for or decide are created ready: no second write for them.
    # (A blueprint's governance may gate any step: then each goes through advancing.)
    governed = Governance.of(instance).policy.watches_steps
    first = set() if governed else {sid for sid in plan.order if plainly_ready(plan, sid)}
    runs = rows_insert([StepRun(instance=instance, step_id=sid, status=S.READY if sid in first else S.PENDING,
                                ready_at=now if sid in first else None)
                        for sid in plan.order])
    publish([lifecycle.instance_event(instance, "workflow.started")])
    effects = Effects()
    runs = advance(instance, plan, effects, runs={r.step_id: r for r in runs}, fresh=True,
                   inline_queue=inline.queue if inline else None, preready=[r for r in runs if r.step_id in first])
    instance.inline_claim = continue_inline(effects, inline, runs) if effects.inline is not None else None
    audit_record(actor=actor, verb="instance.start", target_type="instance", target_id=instance.id,
                 details={"workflow": workflow, "version": version.number,
                          "trigger": instance.trigger.get("type")})
    effects.send_on_commit()
    return instance


def _pools(workflow, plan, context, trigger):
    try:
        return slots.pools_for(plan.spec, context, trigger=trigger)
    except slots.ConcurrencyKeyError as exc:
        raise InvalidRequest(f"workflow '{workflow}': {exc}") from None


def _start_held(instance, plan, verdict, actor, workflow, version):
    """A start over a limit: `queued` with its steps pending until a slot frees, or, for a full
    key with `cancel_new`, terminated at once with the reason."""
    StepRun.objects.bulk_create(
        StepRun(instance=instance, step_id=sid, status=S.PENDING if verdict.status == I.QUEUED else S.CANCELLED)
        for sid in plan.order)
    if verdict.status == I.QUEUED:
        instance.queued_reason = verdict.reason
        set_instance_status(instance, I.QUEUED)
        instance.save(update_fields=["status", "queued_reason"])
    else:
        reason = verdict.reason
        instance.error = {"type": "ConcurrencyLimit", "limit": reason["limit"], "key": reason["key"],
                          "message": f"refused: {reason['key']} already runs {reason['max']} instance(s) "
                                     "(concurrency strategy cancel_new)"}
        set_instance_status(instance, I.TERMINATED)
        instance.save(update_fields=["status", "error", "finished_at"])
    instance.inline_claim = None
    audit_record(actor=actor, verb="instance.start", target_type="instance", target_id=instance.id,
                 details={"workflow": workflow, "version": version.number, "trigger": instance.trigger.get("type"),
                          "status": instance.status, "held_by": verdict.reason})
    return instance


_VERIFIED_VERSIONS = set()


def _verified_plan(workflow, version):
    """The version's plan, once its stored spec has been checked against its sha256 in this process
    (versions are immutable and the plan is cached: later starts run what was checked)."""
    plan = plan_for_version_id(version.id)
    if version.id not in _VERIFIED_VERSIONS:
        if spec_sha256(plan.spec) != version.spec_sha256:
            raise Conflict(f"workflow '{workflow}' v{version.number}: stored spec does not match its sha256; "
                           "refusing to run")
        _VERIFIED_VERSIONS.add(version.id)
    return plan


def _locked(instance_id):
    try:
        return lock_instance(instance_id)
    except (WorkflowInstance.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound(f"instance '{instance_id}' not found") from None


def _transition(instance, status, verb):
    try:
        set_instance_status(instance, status)
    except IllegalTransition:
        raise Conflict(f"cannot {verb} an instance that is {instance.status}") from None


@transaction.atomic
def instance_pause(*, instance_id, actor):
    instance = _locked(instance_id)
    if instance.failing or instance.status == I.PAUSED:
        raise Conflict(f"cannot pause an instance that is {'failing' if instance.failing else 'paused already'}")
    _transition(instance, I.PAUSED, "pause")
    instance.save()
    audit_record(actor=actor, verb="instance.pause", target_type="instance", target_id=instance.id)
    return instance


@transaction.atomic
def instance_resume(*, instance_id, actor):
    instance = _locked(instance_id)
    if instance.status != I.PAUSED:
        raise Conflict(f"cannot resume an instance that is {instance.status}")
    _transition(instance, I.RUNNING, "resume")
    plan = plan_for_version_id(instance.version_id)
    effects = Effects()
    # Steps that became ready while paused (or whose message was refused) go out now, with the
    # ready items of a spawn foreach; a message still queued from before claims nothing, as its
    # attempt number is taken.
    ready = Q(status=S.READY) | Q(status=S.WAITING_CHILD, item_count__isnull=False, items__status=S.READY)
    for run in StepRun.objects.filter(ready, instance=instance).distinct():
        dispatch = dispatch_for(instance, plan, run)
        if dispatch.items is None or dispatch.items:
            effects.dispatches.append(dispatch)
    advance(instance, plan, effects)
    audit_record(actor=actor, verb="instance.resume", target_type="instance", target_id=instance.id)
    effects.send_on_commit()
    return instance


@transaction.atomic
def instance_terminate(*, instance_id, actor, reason=""):
    instance = _locked(instance_id)
    if instance.status in INSTANCE_TERMINAL:
        raise Conflict(f"cannot terminate an instance that is {instance.status}")
    _, name = actor_parts(actor)
    instance.error = {"type": "Terminated", "message": reason or f"terminated by {name}"}
    stop_instance(instance, I.TERMINATED)
    audit_record(actor=actor, verb="instance.terminate", target_type="instance", target_id=instance.id,
                 details={"reason": reason})
    return instance


@transaction.atomic
def instance_time_out(*, instance_id):
    instance = _locked(instance_id)
    if instance.status in INSTANCE_TERMINAL or not instance.deadline_at or instance.deadline_at > timezone.now():
        return instance
    minutes = instance.version.spec.get("timeout_minutes")
    instance.error = {"type": "TimedOut", "message": f"instance exceeded timeout_minutes={minutes}"}
    stop_instance(instance, I.TIMED_OUT)
    audit_record(actor=None, verb="instance.timeout", target_type="instance", target_id=instance.id)
    return instance


def instances_time_out_expired(*, limit=500):
    """The periodic sweep: time out every active instance past its deadline. Safe to run twice."""
    expired = WorkflowInstance.objects.filter(
        status__in=[I.PENDING, I.QUEUED, I.RUNNING, I.WAITING, I.PAUSED], deadline_at__lt=timezone.now()
    ).values_list("id", flat=True)[:limit]
    ids = list(expired)
    for instance_id in ids:
        instance_time_out(instance_id=instance_id)
    return len(ids)


@transaction.atomic
def instance_retry(*, instance_id, actor):
    """Re-run failed, cancelled and compensated steps and everything downstream; reuse the rest."""
    instance = _locked(instance_id)
    if instance.status not in (I.FAILED, I.TIMED_OUT):
        raise Conflict(f"cannot retry an instance that is {instance.status}; only failed or timed-out ones")
    plan = plan_for_version_id(instance.version_id)
    runs = {r.step_id: r for r in StepRun.objects.filter(instance=instance)}
    again = {sid for sid, r in runs.items() if r.status in (S.FAILED, S.CANCELLED, S.COMPENSATED)}
    again |= plan.downstream(again)
    StepRun.objects.filter(instance=instance, step_id__in=again).update(
        status=S.PENDING, output=None, error=None, finished_at=None, completed_seq=None, item_count=None,
        attempt_base=F("attempts"), task_id="", approved_by="", decision_comment="", decision=None,
    )
    pools = _pools(plan.spec["id"], plan, instance.context, instance.trigger)
    verdict = admission.admit(pools, newcomer=instance.id) if pools else admission.ADMITTED
    if verdict.status == I.TERMINATED:
        raise Conflict(f"cannot retry: {verdict.reason['key']} already runs {verdict.reason['max']} instance(s) "
                       "(concurrency strategy cancel_new)")
    _transition(instance, verdict.status, "retry")
    instance.failing = instance.compensation_started = False
    instance.error = instance.result = instance.finished_at = None
    timeout = plan.spec.get("timeout_minutes")
    instance.deadline_at = timezone.now() + timezone.timedelta(minutes=timeout) if timeout else None
    instance.slot_keys, instance.queued_reason = [p.key for p in pools], verdict.reason
    instance.holds_slots = bool(pools) and verdict is admission.ADMITTED
    instance.save(update_fields=["slot_keys", "queued_reason", "holds_slots"])
    effects = Effects()
    if verdict is admission.ADMITTED:
        advance(instance, plan, effects)
    else:
        save_state(instance)
    audit_record(actor=actor, verb="instance.retry", target_type="instance", target_id=instance.id,
                 details={"steps": sorted(again), "status": instance.status})
    effects.send_on_commit()
    return instance


def step_compensate_mark(*, step_run_id, error=None):
    """After a compensation ran: the step becomes compensated (or keeps the failure noted).

    Only while its instance is still failing: a chain left over from before a retry or a
    time-out must not undo steps that a new round reuses.
    """
    in_saga = StepRun.objects.filter(id=step_run_id, status=S.COMPLETED, instance__failing=True,
                                     instance__compensation_started=True)
    if error:
        in_saga.update(error={"type": "CompensationFailed", **error})
    else:
        in_saga.update(status=S.COMPENSATED, compensated_at=timezone.now())
    # Progress of the saga, which the reconciler watches to resume a lost chain.
    WorkflowInstance.objects.filter(step_runs__id=step_run_id).update(updated_at=timezone.now())


@transaction.atomic
def instance_finish_failed(*, instance_id):
    """End of the compensation chain."""
    instance = _locked(instance_id)
    if instance.failing and instance.status not in INSTANCE_TERMINAL:
        finish_failed(instance)
