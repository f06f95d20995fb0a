"""Running one claimed attempt's action, outside any transaction, into an Outcome."""
import json
import logging
import os
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

import jsonschema
from billiard.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection
from django.utils import timezone

from dacproject.nul import UNSTORABLE, unstorable_path
from orchestration import templating
from orchestration.actions import registry as actions
from orchestration.models import StepItem, StepRun
from orchestration.states import StepStatus

from . import approvals
from .plan import plan_for_version_id
from .scope import build_scope, mask, run_outputs

logger = logging.getLogger(__name__)

HEARTBEAT_MIN_INTERVAL_SECONDS = 2.0


@dataclass
class Claim:
    """Everything a worker needs to run one attempt, loaded once when it claimed the attempt."""

    step_run_id: int
    instance_id: object
    step_id: str
    attempt: int
    attempt_base: int
    plan: object
    instance: object
    runs: dict  # {step_id: (status, output)}
    item_index: int | None = None
    item: object = None

    @property
    def step(self):
        return self.plan.steps[self.step_id]


@dataclass
class Outcome:
    ok: bool
    output: object = None
    inputs: object = None
    usage: object = None
    emitted: list = field(default_factory=list)
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    secrets: list = field(default_factory=list)

    @property
    def error(self):
        return {"type": self.error_type, "message": self.error_message}

    def masked(self):
        """A copy with every secret value replaced, ready to store."""
        return Outcome(
            ok=self.ok, output=mask(self.output, self.secrets), inputs=mask(self.inputs, self.secrets),
            usage=self.usage, emitted=mask(self.emitted, self.secrets), error_type=self.error_type,
            error_message=mask(self.error_message, self.secrets), traceback=mask(self.traceback, self.secrets),
        )


class OutputRejected(Exception):
    pass


def run_attempt(claim):
    """Render inputs, run the action, check the output. Never raises (except worker shutdown)."""
    scope = build_scope(instance=claim.instance, workflow=claim.plan.spec["id"], runs=claim.runs,
                        item=claim.item, index=claim.item_index)
    ctx = actions.ActionContext(
        instance_id=str(claim.instance_id), workflow=claim.plan.spec["id"], step_id=claim.step_id,
        attempt=claim.attempt, item_index=claim.item_index,
        heartbeat_fn=_heartbeat_fn(claim),
    )
    outcome = Outcome(ok=False, usage=ctx.usage)
    try:
        outcome.inputs = templating.render_value(claim.step["with"], scope, claim.plan.step_ids)
        check_storable(outcome.inputs, "inputs")
        check_approval_proof(claim, scope, outcome.inputs)
        spec = actions.get(resolve_action_name(claim.step))
        with _beating(claim):
            output = spec.func(ctx, **outcome.inputs)
        check_output(output, claim.step["output_schema"] or spec.output_schema)
        outcome.emitted = _step_events(claim, scope, output) + ctx.emitted
        outcome.ok, outcome.output = True, output
    except SoftTimeLimitExceeded:
        _record_error(outcome, "TimeoutError",
                      f"attempt exceeded timeout_seconds={claim.step['timeout_seconds']}", with_traceback=False)
    except Exception as exc:  # noqa: BLE001 - an action may raise anything; it fails the attempt
        _record_error(outcome, type(exc).__name__, str(exc) or repr(exc))
    outcome.secrets = scope["secrets"].used_values()
    return outcome.masked()


class ApprovalProofMismatch(Exception):
    """The step's inputs are not what its approvers were shown."""


def check_approval_proof(claim, scope, inputs):
    """A step approved by a human runs only with the inputs they saw (DESIGN §7.1): their
    sha256 was recorded with the decision. Rendered as at the gate (its own decision not yet
    made) and with secrets masked, as they were shown."""
    decision = claim.runs.get(claim.step_id, (None, None, None))[2]
    expected = (decision or {}).get("inputs_sha256")
    if not expected or claim.item_index is not None:
        return
    from governance.escalations.proof import digest

    shown = inputs
    if approvals.may_read_own_decision(claim.step):
        own = {**scope["steps"][claim.step_id], "decision": None}
        at_gate = {**scope, "steps": {**scope["steps"], claim.step_id: own}}
        at_gate["nodes"] = at_gate["steps"]
        shown = templating.render_value(claim.step["with"], at_gate, claim.plan.step_ids)
    if digest(mask(shown, scope["secrets"].used_values())) != expected:
        raise ApprovalProofMismatch("inputs changed since they were approved (their sha256 no longer matches the "
                                    "approval proof); retry the instance to ask again")


def _step_events(claim, scope, output):
    """The step's `emit` list, payload templates rendered; they may read the step's own output."""
    if not claim.step["emit"]:
        return []
    own = {**scope["steps"], claim.step_id: {"status": "completed", "output": output}}
    scope = {**scope, "steps": own, "nodes": own}
    return [{"event": e["event"], "payload": templating.render_value(e["payload"], scope, claim.plan.step_ids),
             "correlation_id": templating.render_value(e.get("correlation_id"), scope, claim.plan.step_ids),
             "priority": e.get("priority")}
            for e in claim.step["emit"]]


def resolve_action_name(step):
    """An agent step runs its capability's action, or the action `<agent>.<capability>`."""
    if not step["agent"]:
        return step["action"]
    from registry.models import Agent

    agent = Agent.objects.filter(name=step["agent"]).first()
    if agent is None:
        raise actions.ActionNotFound(f"agent '{step['agent']}' is not registered")
    capability = (agent.capabilities or {}).get(step["action"]) or {}
    return capability.get("action") or f"{step['agent']}.{step['action']}"


def check_storable(value, name):
    """JSON that PostgreSQL can store: no NaN or infinity, no NUL character. Returns it encoded."""
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise OutputRejected(f"{name} is not storable JSON: {exc}") from exc
    where = unstorable_path(value, name)
    if where:
        raise OutputRejected(f"{where} {UNSTORABLE}")
    return encoded


def check_output(output, schema):
    encoded = check_storable(output, "output")
    if len(encoded.encode()) > settings.DAC_MAX_OUTPUT_BYTES:
        raise OutputRejected(
            f"output is {len(encoded.encode())} bytes, over DAC_MAX_OUTPUT_BYTES={settings.DAC_MAX_OUTPUT_BYTES}"
        )
    if schema:
        validator = jsonschema.validators.validator_for(schema)(schema)
        violations = sorted(validator.iter_errors(output), key=lambda e: list(e.path))
        if violations:
            details = "; ".join(f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in violations[:10])
            raise OutputRejected(f"output does not match output_schema: {details}")


def _record_error(outcome, error_type, message, with_traceback=True):
    outcome.ok = False
    outcome.error_type = error_type[:200]
    outcome.error_message = message.replace("\x00", "\\x00")
    outcome.traceback = traceback.format_exc().replace("\x00", "\\x00") if with_traceback else ""
    if check_storable_quietly(outcome.inputs) is None:
        outcome.inputs = None  # what could not be stored is described by the error instead


def check_storable_quietly(value):
    try:
        return check_storable(value, "value")
    except OutputRejected:
        return None


def failed_outcome(error_type, message):
    """An Outcome for a failure found outside the action (e.g. its result could not be stored)."""
    outcome = Outcome(ok=False, usage=actions.Usage())
    _record_error(outcome, error_type, message, with_traceback=False)
    return outcome


def _held_attempt(claim):
    """The row of this attempt, only while it still holds the step (or item)."""
    if claim.item_index is None:
        return StepRun.objects.filter(id=claim.step_run_id, status=StepStatus.RUNNING, attempts=claim.attempt)
    return StepItem.objects.filter(step_run_id=claim.step_run_id, index=claim.item_index,
                                   status=StepStatus.RUNNING, attempts=claim.attempt)


def _heartbeat_fn(claim):
    """`ctx.heartbeat()`: throttled, so a chatty action does not hammer the database."""
    last = [0.0]

    def beat():
        now = time.monotonic()
        if now - last[0] >= HEARTBEAT_MIN_INTERVAL_SECONDS:
            last[0] = now
            _held_attempt(claim).update(heartbeat_at=timezone.now())

    return beat


class _Beater:
    """One thread per worker process keeps the heartbeat of whatever attempts run in it fresh,
    so a long step is never mistaken for one whose worker died."""

    def __init__(self):
        self._held = {}
        self._guard = threading.Lock()
        self._pid = None

    @contextmanager
    def beating(self, claim):
        self._ensure_thread()
        key = (claim.step_run_id, claim.item_index, claim.attempt)
        with self._guard:
            self._held[key] = claim
        try:
            yield
        finally:
            with self._guard:
                self._held.pop(key, None)

    def _ensure_thread(self):
        if self._pid != os.getpid():  # a forked pool process needs its own thread
            self._pid = os.getpid()
            threading.Thread(target=self._loop, name="dac-heartbeat", daemon=True).start()

    def _loop(self):
        while True:
            time.sleep(settings.DAC_HEARTBEAT_INTERVAL_SECONDS)
            with self._guard:
                claims = list(self._held.values())
            for claim in claims:
                try:
                    _held_attempt(claim).update(heartbeat_at=timezone.now())
                except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
                    logger.warning("heartbeat for step run %s failed", claim.step_run_id, exc_info=True)
                    connection.close()


_beater = _Beater()
_beating = _beater.beating


def run_compensation(step_run_id):
    """Run a completed step's `compensate` action; returns None or the error (masked)."""
    run = StepRun.objects.select_related("instance__version").get(id=step_run_id)
    if run.status != StepStatus.COMPLETED or not run.instance.failing:
        return None  # already compensated (a redelivered message), or the saga is over
    instance = run.instance

    plan = plan_for_version_id(instance.version_id)
    step = plan.steps[run.step_id]
    runs = run_outputs(instance.id)
    scope = build_scope(instance=instance, workflow=plan.spec["id"], runs=runs)
    ctx = actions.ActionContext(instance_id=str(instance.id), workflow=plan.spec["id"], step_id=run.step_id, attempt=1)
    try:
        inputs = templating.render_value(step["compensate"]["with"], scope, plan.step_ids)
        actions.get(step["compensate"]["action"]).func(ctx, **inputs)
    except Exception as exc:  # noqa: BLE001 - a failed compensation is recorded, the saga goes on
        return mask({"message": f"compensation failed: {type(exc).__name__}: {exc}"}, scope["secrets"].used_values())
    return None
