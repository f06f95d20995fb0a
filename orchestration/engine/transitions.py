"""The statements that move a step attempt, a step or an instance on the hot path, each guarded.

Every transition of a worker's step is here, in the order a finished attempt's path takes them;
each function's docstring names its guard (what must hold for it to change anything), and a
transition that finds its guard false changes nothing and says so (None, False or 0):

    lock_instance        the instance row, locked: every outcome is applied under it
    step_claim           ready (or pending, held for this task) -> running, + its attempt row
    step_reclaim         running -> running again, for the task that held it, after a crash
    attempt_begin        an attempt (or foreach item's attempt) row, taken over on redelivery
    step_complete        running at this attempt -> completed, instance locked and counted, + event
    step_retry_later     running at this attempt -> ready at a later time (a retry's backoff)
    step_fail            running at this attempt -> failed
    attempt_end          the attempt row's outcome
    steps_mark_ready     pending -> ready, for a whole fan-out at once
    step_release_held    pending (held for an inline claim that failed) -> ready
    save_state           the instance's engine columns, written after advancing changed them
    rows_insert          a new instance, its step runs: created (pending, or ready with nothing to wait for)

The claim and the completion are one round trip of plain SQL each: they run for every step.
Parked steps, foreach items and the cascades of a failing instance keep their statements next
to their logic (parked.py, steps.py, advance.py, cascade.py).
"""
import json
from dataclasses import dataclass

import psycopg
from django.db import connection
from django.utils import timezone

from metrics import tracing
from orchestration.events.publish import react_on_commit
from orchestration.models import AttemptStatus, Event, StepAttempt, StepRun, WorkflowInstance
from orchestration.states import StepStatus as S
from registry.models import Blueprint, WorkflowDefinition

from .approvals import Governance
from .execute import Claim
from .plan import plan_for_version_id

_STEP = StepRun._meta.db_table
_INSTANCE = WorkflowInstance._meta.db_table
_ATTEMPT = StepAttempt._meta.db_table
_EVENT = Event._meta.db_table
_DEFINITION = WorkflowDefinition._meta.db_table
_BLUEPRINT = Blueprint._meta.db_table

_CLAIM_SQL = f"""
WITH claimed AS (
    UPDATE {_STEP} AS s
       SET status = 'running', attempts = %(attempt)s, task_id = %(task_id)s, worker = %(worker)s,
           heartbeat_at = now(), started_at = COALESCE(s.started_at, now()),
           ready_at = CASE WHEN s.status = 'pending' THEN now() ELSE s.ready_at END
      FROM {_INSTANCE} AS i
     WHERE {{target}} AND i.id = s.instance_id
       AND i.status IN ('running', 'waiting') AND NOT i.failing
     RETURNING s.id, s.instance_id, s.step_id, s.attempts, s.attempt_base, i.version_id, i.context, i.parent_id,
               i.trigger, i.priority
), recorded AS (
    INSERT INTO {_ATTEMPT} (step_run_id, item_index, number, status, worker, task_id, started_at,
                            error_type, error_message, traceback, tokens_in, tokens_out, cost_usd, model)
    SELECT id, NULL, attempts, 'running', %(worker)s, %(task_id)s, now(), '', '', '', 0, 0, 0, ''
      FROM claimed
    ON CONFLICT ON CONSTRAINT uniq_step_attempt
       DO UPDATE SET worker = EXCLUDED.worker, task_id = EXCLUDED.task_id, started_at = EXCLUDED.started_at,
                     status = 'running'
)
SELECT id, instance_id, step_id, attempts, attempt_base, version_id, context, parent_id, trigger, priority{{outputs}}
  FROM claimed
"""
# What templates read of the instance's steps, in the claim's own statement: the outputs a ready step
# depends on were committed before it was made ready, so its snapshot holds them.
_OUTPUTS = f""",
       (SELECT json_agg(json_build_array(r.step_id, r.status, r.output, r.decision))
          FROM {_STEP} AS r WHERE r.instance_id = claimed.instance_id)"""
# Attempt n of this step: it is ready after attempt n-1, or this very message is redelivered.
_THIS_STEP = """s.id = %(id)s AND ((s.status = 'ready' AND s.attempts = %(attempt)s - 1)
                 OR (%(redelivered)s AND s.status = 'running' AND s.attempts = %(attempt)s
                     AND s.task_id = %(task_id)s))"""
# A step advance held for this task to continue into, in the same transaction: never dispatched,
# still `pending` (or `ready` when the new instance was created so).
_HELD_FOR_TASK = "s.id = %(id)s AND s.status IN ('pending', 'ready') AND s.attempts = %(attempt)s - 1"
# A step this task took on inline, when its message is redelivered after the worker died.
_CONTINUED_BY_TASK = "s.id = %(id)s AND s.status = 'running' AND s.task_id = %(task_id)s AND s.attempts = %(attempt)s"
_CONTINUED_SQL = f"SELECT id, attempts FROM {_STEP} WHERE task_id = %(task_id)s AND status = 'running' LIMIT 1"


_NEVER_BY_COUNT = 2**62


class _PreparingCursor(psycopg.Cursor):
    """Binds parameters server-side and has PostgreSQL keep the plan of each statement it runs
    (psycopg's per-connection cache of prepared statements)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_cursor():
    """A cursor of the default connection (in its transaction, with Django's error mapping and
    execute wrappers) for the statements below, which run for every step: planning one of them
    costs PostgreSQL more than running it, so each is planned once per connection. Django turns
    psycopg's automatic preparing off (for connection poolers in transaction mode); this asks for it
    for these few statements only."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:  # None refuses even an explicit prepare; this never prepares on its own
        raw.prepare_threshold = _NEVER_BY_COUNT
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_PreparingCursor(raw))


@dataclass(frozen=True)
class InstanceView:
    """What a running attempt needs of its instance (templates read these)."""

    id: object
    context: dict
    parent_id: object
    trigger: dict | None = None
    priority: int = 5


def lock_instance(instance_id):
    """The instance row, locked for this transaction (SELECT ... FOR UPDATE): every outcome is
    applied under it, and it is always taken before any of the instance's step rows."""
    return WorkflowInstance.objects.select_for_update().get(id=instance_id)


def step_claim(*, step_run_id, attempt, task_id, worker, redelivered=False, runs=None, held=False):
    """Take attempt `attempt` of a step for this task; None if it is not this task's to run.

    Guard: the step is `ready` after attempt `attempt` - 1 (`pending` or `ready` when `held`), or
    `running` at `attempt` for this very task when `redelivered`; and its instance is `running`
    or `waiting` and not failing. The attempt row is written by the same statement.

    A `redelivered` message (its worker died, or the task is retrying a database error) may
    take back the running attempt it held; a mere duplicate may not. `held`: the step is one
    advance kept `pending` for this task, in this transaction. `runs`
    ({step_id: (status, output, decision)}) saves reading the outputs again when the caller has them.
    """
    if held:
        row = _claim(_HELD_FOR_TASK, runs, id=step_run_id, attempt=attempt, task_id=task_id, worker=worker)
        return _claim_from_row(row, runs) if row else None
    row = _claim(_THIS_STEP, runs, id=step_run_id, attempt=attempt, task_id=task_id, worker=worker,
                 redelivered=redelivered)
    if row is None and redelivered:
        return step_reclaim(task_id=task_id, worker=worker, runs=runs)
    return _claim_from_row(row, runs) if row else None


def step_reclaim(*, task_id, worker, runs=None):
    """After a crash, a redelivered message resumes the step its task had continued into.

    Guard: that step is `running` and held by this task id, at the attempt it holds."""
    with prepared_cursor() as cursor:
        cursor.execute(_CONTINUED_SQL, {"task_id": task_id})
        held = cursor.fetchone()
    if held is None:
        return None
    row = _claim(_CONTINUED_BY_TASK, runs, id=held[0], attempt=held[1], task_id=task_id, worker=worker)
    return _claim_from_row(row, runs) if row else None


def _claim(target, runs, **params):
    """The claim's row; with the instance's step outputs as its last column when `runs` is None."""
    with prepared_cursor() as cursor:
        cursor.execute(_CLAIM_SQL.format(target=target, outputs="" if runs is not None else _OUTPUTS), params)
        return cursor.fetchone()


def _claim_from_row(row, runs=None):
    if runs is None:
        row, outputs = row[:-1], row[-1]
        if isinstance(outputs, str):  # `json`, which a connection may leave undecoded like jsonb
            outputs = json.loads(outputs)
        runs = {sid: (status, output, decision) for sid, status, output, decision in outputs or ()}
        runs[row[2]] = ("running", *runs[row[2]][1:])  # its own status as the statement left it
    step_run_id, instance_id, step_id, attempts, attempt_base, version_id, context, parent_id, trigger, priority = row
    if isinstance(context, str):  # Django leaves jsonb undecoded on its connections
        context = json.loads(context)
    if isinstance(trigger, str):
        trigger = json.loads(trigger)
    return Claim(
        step_run_id=step_run_id, instance_id=instance_id, step_id=step_id, attempt=attempts,
        attempt_base=attempt_base, plan=plan_for_version_id(version_id),
        instance=InstanceView(instance_id, context or {}, parent_id, trigger, priority),
        runs=runs,
    )


_BEGIN_SQL = f"""
INSERT INTO {_ATTEMPT} (step_run_id, item_index, number, status, worker, task_id, started_at, inputs,
                        error_type, error_message, traceback, tokens_in, tokens_out, cost_usd, model)
VALUES (%(id)s, %(item)s, %(number)s, 'running', %(worker)s, %(task_id)s, %(now)s, %(inputs)s::jsonb,
        '', '', '', 0, 0, 0, '')
ON CONFLICT ON CONSTRAINT uniq_step_attempt
   DO UPDATE SET worker = EXCLUDED.worker, task_id = EXCLUDED.task_id, started_at = EXCLUDED.started_at,
                 inputs = EXCLUDED.inputs, status = 'running'
"""


def attempt_begin(*, step_run_id, item_index, number, now, worker="", task_id="", inputs=None):
    """Record that attempt `number` of a step (or foreach item) began: one statement, and a
    redelivered attempt's row is taken over rather than duplicated.

    Guard: none of its own; the caller's claim of the step or item holds it."""
    with prepared_cursor() as cursor:
        cursor.execute(_BEGIN_SQL, {"id": step_run_id, "item": item_index, "number": number, "worker": worker,
                                    "task_id": task_id, "now": now,
                                    "inputs": None if inputs is None else json.dumps(inputs)})


_INSTANCE_FIELDS = WorkflowInstance._meta.concrete_fields
_INSTANCE_COLUMNS = ", ".join(f"i.{f.column}" for f in _INSTANCE_FIELDS)
_INSTANCE_CONVERTERS = [(n, f.from_db_value) for n, f in enumerate(_INSTANCE_FIELDS) if hasattr(f, "from_db_value")]

_COMPLETE_SQL = f"""
WITH i AS (
    UPDATE {_INSTANCE}
       SET completion_count = completion_count + 1, updated_at = now()
     WHERE id = %(instance_id)s
    RETURNING *
), step AS (
    UPDATE {_STEP} AS s
       SET status = 'completed', output = %(output)s::jsonb, error = NULL, finished_at = now(),
           completed_seq = i.completion_count
      FROM i
     WHERE s.id = %(id)s AND s.status = 'running' AND s.attempts = %(attempt)s
    RETURNING s.id
), attempt AS (
    UPDATE {_ATTEMPT}
       SET status = 'succeeded', finished_at = now(), inputs = %(inputs)s::jsonb, output = %(output)s::jsonb,
           tokens_in = %(tokens_in)s, tokens_out = %(tokens_out)s, cost_usd = %(cost_usd)s, model = %(model)s
     WHERE step_run_id = (SELECT id FROM step) AND item_index IS NULL AND number = %(attempt)s
), event AS (
    INSERT INTO {_EVENT} (event_id, event_type, source_workflow, source_instance_id, payload, priority,
                          correlation_id, ttl_seconds, timestamp, reacted_at)
    SELECT %(event_id)s, %(event_type)s, %(source_workflow)s, i.id, %(payload)s::jsonb,
           i.priority, i.correlation_id, NULL, %(timestamp)s, NULL
      FROM step, i
)
SELECT {_INSTANCE_COLUMNS}, d.blueprint_id, b.updated_at, (SELECT count(*) FROM step)
  FROM i JOIN {_DEFINITION} AS d ON d.id = i.definition_id LEFT JOIN {_BLUEPRINT} AS b ON b.id = d.blueprint_id
"""


def step_complete(*, claim, outcome, event):
    """Lock the instance, record a succeeded attempt, complete its step (next in the instance's
    completion order) and store its `step.completed` event (`event`, a Draft without its instance's
    priority and correlation, which the statement takes from the row), in one statement.

    It also reads the definition's blueprint stamp, so advancing finds the governance policy
    without asking Redis. Returns the instance as locked (its `completion_count` already counting this step), or None
    if this attempt no longer holds the step (a duplicate delivery finished it first): the caller
    must then roll back, as the instance's count moved.

    Guard: the step is `running` at this attempt. The instance row is locked before the step's
    (the statement's step update reads the instance's), in the order every transition takes them.
    """
    usage = outcome.usage
    params = {
        "instance_id": claim.instance_id, "id": claim.step_run_id, "attempt": claim.attempt,
        "inputs": json.dumps(outcome.inputs), "output": json.dumps(outcome.output),
        "tokens_in": usage.tokens_in, "tokens_out": usage.tokens_out, "cost_usd": usage.cost_usd,
        "model": usage.model, "event_id": event.event_id, "event_type": event.event_type,
        "source_workflow": event.source_workflow, "payload": json.dumps(event.payload), "timestamp": event.timestamp,
    }
    with prepared_cursor() as cursor:
        cursor.execute(_COMPLETE_SQL, params)
        row = cursor.fetchone()
    if row is None:
        raise WorkflowInstance.DoesNotExist(claim.instance_id)
    if row[-1] != 1:
        return None
    instance = instance_from_row(row[:-3])
    # Its governance policy is the one of the blueprint as this statement read it: no Redis lookup.
    Governance.of(instance).stamped(row[-3], row[-2])
    event.priority, event.correlation_id = instance.priority, instance.correlation_id
    tracing.attempt_ended(claim.step_run_id, None, claim.attempt)
    react_on_commit([event])
    return instance


def instance_from_row(values):
    """A WorkflowInstance from a row of every column (in field order), as the ORM would load it."""
    values = list(values)
    for n, convert in _INSTANCE_CONVERTERS:
        values[n] = convert(values[n], None, connection)
    return WorkflowInstance.from_db(connection.alias, None, values)


def _holding(claim):
    """The step row, only while this attempt holds it: `running` at this attempt."""
    return StepRun.objects.filter(id=claim.step_run_id, status=S.RUNNING, attempts=claim.attempt)


def step_retry_later(claim, error, ready_at):
    """A failed attempt with retries left: the step is `ready` again from `ready_at` (its backoff;
    its next attempt's message is sent with that countdown). True if it moved.

    Guard: the step is `running` at this attempt."""
    return bool(_holding(claim).update(status=S.READY, error=error, ready_at=ready_at))


def step_fail(claim, error):
    """A failed attempt without retries: the step is `failed`. True if it moved.

    Guard: the step is `running` at this attempt."""
    return bool(_holding(claim).update(status=S.FAILED, error=error, finished_at=timezone.now()))


def attempt_end(claim, outcome):
    """Record how an attempt (or a foreach item's attempt) ended, with its usage.

    Guard: none of its own; the caller moved the step or item under the same guard first."""
    usage = outcome.usage
    StepAttempt.objects.filter(step_run_id=claim.step_run_id, item_index=claim.item_index, number=claim.attempt).update(
        status=AttemptStatus.SUCCEEDED if outcome.ok else AttemptStatus.FAILED,
        finished_at=timezone.now(), inputs=outcome.inputs, output=outcome.output if outcome.ok else None,
        error_type=outcome.error_type, error_message=outcome.error_message, traceback=outcome.traceback,
        tokens_in=usage.tokens_in, tokens_out=usage.tokens_out, cost_usd=usage.cost_usd, model=usage.model,
    )
    tracing.attempt_ended(claim.step_run_id, claim.item_index, claim.attempt)


def steps_mark_ready(runs):
    """Write `ready` for the runs advancing made ready: one statement for a whole fan-out.

    Guard: the instance lock, under which advancing found each of them `pending` with its
    dependencies done (the runs were read after the lock was taken)."""
    if runs:
        StepRun.objects.filter(id__in=[r.id for r in runs]).update(status=S.READY, ready_at=runs[0].ready_at)


def step_release_held(step_run_id):
    """A step advancing held for an inline claim that failed goes out like the others: `ready`.

    Guard: the step is still `pending` (as advancing left it, in this transaction)."""
    StepRun.objects.filter(id=step_run_id, status=S.PENDING).update(status=S.READY, ready_at=timezone.now())


# The instance columns the engine changes; saving only these keeps a big context out of every write.
ENGINE_FIELDS = ["status", "result", "error", "failing", "gated", "compensation_started", "completion_count",
                 "deadline_at", "finished_at", "queued_reason", "updated_at"]


def save_state(instance):
    """Write the instance's engine columns (status transitions are checked before, by
    `advance.set_instance_status`).

    Guard: the instance lock, held by the caller since the instance was read."""
    instance.save(update_fields=ENGINE_FIELDS)


def engine_state(instance):
    """The engine columns' values, to tell whether advancing changed any (then `save_state`)."""
    return tuple(getattr(instance, name) for name in ENGINE_FIELDS if name != "updated_at")


def rows_insert(objs):
    """INSERT new rows of one model (a new instance; its step runs) as the ORM would, values and
    defaults included, in one prepared statement: the ORM's compiler cost an instance start more
    than the writes. Sets the generated keys and marks the objects saved; a unique violation
    raises IntegrityError as `create`/`bulk_create` do (an idempotent spawn relies on it).

    Guard: none of its own; the rows are new (a fresh uuid7 instance id, or the caller's)."""
    if not objs:
        return objs
    model = type(objs[0])
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and f.db_returning)]
    auto = [f for f in meta.concrete_fields if f.primary_key and f.db_returning]
    row = f"({', '.join(['%s'] * len(fields))})"
    sql = (f"INSERT INTO {meta.db_table} ({', '.join(f.column for f in fields)}) VALUES "
           + ", ".join([row] * len(objs)) + (f" RETURNING {auto[0].column}" if auto else ""))
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        keys = cursor.fetchall() if auto else ()
    for obj, key in zip(objs, keys, strict=False):
        setattr(obj, auto[0].attname, key[0])
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return objs
