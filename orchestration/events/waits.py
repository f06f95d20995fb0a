"""`wait_for` steps (DESIGN §6.4): parked in `waiting_event` by a task, resumed once by the first
matching event published after their instance started, or ended by the sweep at their timeout.

No worker waits: the parking task commits an `EventWait` row and returns. An event published
before the step parked still resumes it, because the parking task looks for one after its
commit, and the publisher looks for open waits after its own (see `publish` for why one of the
two always sees the other).
"""
import logging

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dacproject.nul import UNSTORABLE, unstorable_path
from orchestration import engine, templating
from orchestration.engine.effects import Effects
from orchestration.engine.plan import plan_for_version_id
from orchestration.engine.scope import build_scope, run_outputs
from orchestration.models import StepRun
from orchestration.states import StepStatus as S

from .matching import payload_matches
from .models import Event, EventMatch, EventWait, MatchKind, WaitStatus
from .publish import listeners_changed

logger = logging.getLogger(__name__)
MAX_CORRELATION_ID = 200


def wait_park(*, step_run_id, attempt):
    """The parking task's service: claim and park the step, then resume it at once if its event
    was published already. Returns the wait's id, or None when this message parked nothing."""
    wait_id = _park(step_run_id, attempt)
    if wait_id is not None:
        # Committed; now tell publishers, then look (this order is what `publish` relies on).
        told = listeners_changed()
        wait_check(EventWait.objects.get(id=wait_id), done=told)
    return wait_id


def wait_check(wait, *, done=True):
    """Resume an open wait with an event stored before it parked, if there is one. With
    `done=False` the wait stays unchecked, so the reconciler looks again later."""
    event = first_matching_event(wait)
    resumed = event is not None and wait_resume(wait_id=wait.id, event_id=event.event_id)
    if done:
        EventWait.objects.filter(id=wait.id).update(checked_at=timezone.now())
    return resumed


def unchecked_waits(*, before, limit):
    """Open waits whose parking task did not finish its look for earlier events."""
    return EventWait.objects.filter(status=WaitStatus.WAITING, checked_at__isnull=True, created_at__lt=before)[:limit]


@transaction.atomic
def _park(step_run_id, attempt):
    locked = engine.lock_step(step_run_id)
    if locked is None:
        return None
    instance, run, plan = locked
    spec = plan.steps[run.step_id]["wait_for"]
    effects = Effects()
    match, correlation_id, problem = _rendered(instance, plan, spec)
    inputs = {"event": spec["event"], "match": match if problem is None else spec["match"],
              "correlation_id": correlation_id if problem is None else "", "timeout_seconds": spec["timeout_seconds"]}
    if not engine.park_step(instance, plan, run, effects, attempt=attempt, status=S.WAITING_EVENT, inputs=inputs):
        return None
    if problem is not None:
        engine.parked_fail(instance, plan, run, problem, effects, status=S.WAITING_EVENT, retry=False)
        effects.send_on_commit()
        return None
    timeout = spec["timeout_seconds"]
    wait = EventWait.objects.create(
        step_run=run, instance=instance, attempt=attempt, event_type=spec["event"], match=match,
        correlation_id=correlation_id, since=instance.created_at,
        deadline_at=timezone.now() + timezone.timedelta(seconds=timeout) if timeout else None)
    effects.send_on_commit()
    return wait.id


def _rendered(instance, plan, spec):
    """(match, correlation id, None) as rendered for this instance, or (..., error) when they
    cannot be rendered or stored: the step then fails with that error instead of waiting."""
    try:
        scope = build_scope(instance=instance, workflow=plan.spec["id"], runs=run_outputs(instance.id))
        match = templating.render_value(spec["match"], scope, plan.step_ids)
        correlation_id = templating.render_value(spec["correlation_id"], scope, plan.step_ids)
    except templating.TemplateError as exc:
        return None, None, {"type": "TemplateError", "message": f"wait_for: {exc}"}
    correlation_id = "" if correlation_id is None else str(correlation_id)
    if len(correlation_id) > MAX_CORRELATION_ID:
        return None, None, {"type": "InvalidWait", "message": f"wait_for.correlation_id rendered to "
                                                               f"{len(correlation_id)} characters; at most "
                                                               f"{MAX_CORRELATION_ID}"}
    where = unstorable_path(match, "wait_for.match") or unstorable_path(correlation_id, "wait_for.correlation_id")
    if where:
        return None, None, {"type": "InvalidWait", "message": f"{where} {UNSTORABLE}"}
    return match, correlation_id, None


def event_fits(wait, event, now=None):
    """Whether `event` may resume `wait` (type, time, correlation, payload, not expired)."""
    return (event.event_type == wait.event_type and event.timestamp >= wait.since
            and (not wait.correlation_id or event.correlation_id == wait.correlation_id)
            and not event.is_expired(now) and payload_matches(wait.match, event.payload, globs=False))


def first_matching_event(wait):
    """The earliest stored event that fits an open wait, or None. The payload match is narrowed
    in PostgreSQL (JSONB containment) and confirmed here, so no event is skipped however many
    others of its type came first."""
    candidates = Event.objects.filter(_payload_prefilter(wait.match), event_type=wait.event_type,
                                      timestamp__gte=wait.since).order_by("timestamp")
    if wait.correlation_id:
        candidates = candidates.filter(correlation_id=wait.correlation_id)
    now = timezone.now()
    for event in candidates.iterator(chunk_size=200):
        if event_fits(wait, event, now):
            return event
    return None


def _payload_prefilter(match):
    """A superset, as JSONB containment, of the payloads `match` accepts (paths through list
    indexes are left to the exact check). A value matches itself, or an array holding it."""
    narrowed = Q()
    for path, expected in (match or {}).items():
        parts = path.split(".")
        if any(part.isdigit() for part in parts):
            continue
        either = Q()
        for option in expected if isinstance(expected, list) else [expected]:
            for shape in (option, [option]):
                for part in reversed(parts):
                    shape = {part: shape}
                either |= Q(payload__contains=shape)
        narrowed &= either
    return narrowed


def open_waits_for(events):
    """{event_type: [open EventWait]} for a batch of events."""
    waits = {}
    for wait in EventWait.objects.filter(status=WaitStatus.WAITING, event_type__in={e.event_type for e in events}):
        waits.setdefault(wait.event_type, []).append(wait)
    return waits


def wait_resume(*, wait_id, event_id):
    """Complete a waiting step with the event; True if this call resumed it (at most once)."""
    try:
        with transaction.atomic():
            return _resume(wait_id, event_id)
    except IntegrityError:
        return False  # a concurrent delivery recorded this match first


def _resume(wait_id, event_id):
    instance_id = EventWait.objects.filter(id=wait_id).values_list("instance_id", flat=True).first()
    if instance_id is None:
        return False
    instance = engine.lock_instance(instance_id)
    wait = EventWait.objects.select_for_update().get(id=wait_id)
    event = Event.objects.filter(event_id=event_id).first()
    if wait.status != WaitStatus.WAITING or event is None or not event_fits(wait, event):
        return False
    run = StepRun.objects.get(id=wait.step_run_id)
    plan = plan_for_version_id(instance.version_id)
    output = {"event_id": str(event.event_id), "event_type": event.event_type, "payload": event.payload,
              "correlation_id": event.correlation_id}
    effects = Effects()
    if run.attempts != wait.attempt or not engine.parked_complete(instance, plan, run, output, effects,
                                                                   status=S.WAITING_EVENT):
        return False
    wait.status, wait.event, wait.resolved_at = WaitStatus.RESUMED, event, timezone.now()
    wait.save(update_fields=["status", "event", "resolved_at"])
    EventMatch.objects.create(event=event, kind=MatchKind.RESUMED, instance=instance, step_id=run.step_id)
    effects.send_on_commit()
    return True


def waits_time_out(*, limit=500):
    """The sweep: end every open wait past its deadline (each at most once, however many sweeps)."""
    expired = list(EventWait.objects.filter(status=WaitStatus.WAITING, deadline_at__lt=timezone.now())
                   .values_list("id", flat=True)[:limit])
    return sum(1 for wait_id in expired if wait_time_out(wait_id=wait_id))


@transaction.atomic
def wait_time_out(*, wait_id):
    instance_id = EventWait.objects.filter(id=wait_id).values_list("instance_id", flat=True).first()
    if instance_id is None:
        return False
    instance = engine.lock_instance(instance_id)
    wait = EventWait.objects.select_for_update().get(id=wait_id)
    if wait.status != WaitStatus.WAITING or not wait.deadline_at or wait.deadline_at > timezone.now():
        return False
    run = StepRun.objects.get(id=wait.step_run_id)
    plan = plan_for_version_id(instance.version_id)
    spec = plan.steps[run.step_id]["wait_for"]
    effects = Effects()
    if run.attempts == wait.attempt:
        if spec["on_timeout"] == "continue":
            engine.parked_complete(instance, plan, run, None, effects, status=S.WAITING_EVENT)
        else:
            error = {"type": "WaitTimeout",
                     "message": f"no '{wait.event_type}' event matched within {spec['timeout_seconds']:g}s"}
            engine.parked_fail(instance, plan, run, error, effects, status=S.WAITING_EVENT, retry=False)
    wait.status, wait.resolved_at = WaitStatus.TIMED_OUT, timezone.now()
    wait.save(update_fields=["status", "resolved_at"])
    effects.send_on_commit()
    return True
