"""Worker liveness: a killed worker's steps go back to ready in seconds, a slow step never does.

A step's own heartbeat (DAC_HEARTBEAT_STALE_SECONDS, 30 s) must outlast whatever stalls a busy
pool process, so after a whole worker was killed its steps waited that long plus the reconciler's
interval (35 s). A worker's main process only runs its event loop, so its own beat says within
seconds whether the worker is there, however long its steps run:

- Each worker's main process writes its WorkerBeat row when it starts, before it takes any
  message (`worker_register`), then every DAC_WORKER_BEAT_SECONDS, B (`worker_beat`, from
  orchestration.workers.liveness); a clean shutdown deletes it (`worker_forget`).
- Every DAC_WORKER_SWEEP_INTERVAL_SECONDS, S, beat runs `workers_lost_recover`: a worker whose
  beat is DAC_WORKER_LOST_SECONDS, L, old is lost, and the running plain steps and foreach items
  it held get the engine's stale-heartbeat recoveries (`engine.steps_recover_lost`): the same
  conditional updates (a concurrent or repeated sweep recovers nothing twice) and free recoveries.
  A worker with no row (one older than this code, or forgotten after FORGET_AFTER) is judged by
  its steps' own heartbeats, which it refreshes every DAC_HEARTBEAT_INTERVAL_SECONDS, H: lost
  once they are L + H old.

Worst case, defaults B = 2, L = 6, S = 2: a worker killed at t beat last at b <= t. Live workers
beat every B, so at a sweep at s the freshest beat is >= s - B and the cutoff (below) is s - L; the
dead row is behind it for every sweep after t + L, and the first one comes by t + L + S = t + 8 s,
plus the sweep message's wait for a free pool process (beat's messages have no priority, so on
Redis they are served before the steps'). The recovered step is dispatched when that transaction
commits and a live worker claims it within milliseconds; the instance completes after the step's
own run. On average b is B/2 before t and the sweep S/2 after the threshold: L - B/2 + S/2 = 6 s.

No false recovery: a live worker's beat is at most B (plus a write) old; L = 3 B leaves two missed
beats of margin, and nothing here reads a step's age. A process hung inside a live worker is
still recovered by the reconciler's per-step threshold. The cutoff is min(now, freshest + B) - L:
after a database outage every row is equally old, so the first sweep recovers nothing, and the
beat thread retries every RETRY_SECONDS while it fails, so live workers beat again at once. Only a
sweep falling into that fraction of a second, after an outage longer than L - B, could take a live
worker for lost; its attempt then cannot record its outcome (it no longer holds the step) and the
step runs again, as the per-step path already does after an outage longer than its threshold.

A restarted worker usually keeps its name (`celery@%h`): what still runs under that name when it
registers, before it consumes anything, is its previous process's, and is recovered then. Two
live workers must not share a name (Celery's control commands need that already): when a process
beat under the name within L, the new one recovers nothing and logs an error.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Now

from orchestration import engine
from orchestration.engine.reconcile import LOST_RECOVERIES
from orchestration.models import StepAttempt

from .models import WorkerBeat

logger = logging.getLogger(__name__)

# A dead worker's row is kept this long for whoever looks, then deleted; its steps were recovered
# long before (a step left over, e.g. of a paused instance, is then judged by its own heartbeat).
FORGET_AFTER = timedelta(hours=1)


def worker_register(*, hostname, pid):
    """A worker starts: its row, fresh; whatever still runs under its name was its previous
    process's (this one has taken nothing yet), recovered now. Returns what was recovered.

    Unless another process beat under that name within DAC_WORKER_LOST_SECONDS: it may be alive
    (two workers started with one name), and its steps must not run twice. Then nothing is
    recovered here; a dead predecessor's steps wait for the per-step threshold instead."""
    recent = Now() - timedelta(seconds=settings.DAC_WORKER_LOST_SECONDS)
    other_alive = WorkerBeat.objects.filter(hostname=hostname, beat_at__gte=recent).exclude(pid=pid).exists()
    WorkerBeat.objects.update_or_create(hostname=hostname, defaults={"pid": pid, "started_at": Now(), "beat_at": Now()})
    if other_alive:
        logger.error("worker %s: another process beat under this name %s s ago or less; give every worker its "
                     "own name (celery worker -n NAME): its steps are left to the per-step heartbeat threshold",
                     hostname, settings.DAC_WORKER_LOST_SECONDS)
        return dict.fromkeys(LOST_RECOVERIES, 0)
    return engine.steps_recover_lost(steps=Q(worker=hostname), items=_items_held_by(Q(worker=hostname)))


def worker_beat(*, hostname, pid):
    """A running worker's beat (its row is written again if the sweep forgot it meanwhile)."""
    if not WorkerBeat.objects.filter(hostname=hostname).update(beat_at=Now()):
        WorkerBeat.objects.get_or_create(hostname=hostname,
                                         defaults={"pid": pid, "started_at": Now(), "beat_at": Now()})


def worker_forget(*, hostname, pid):
    """A clean shutdown: the worker's tasks are done or handed back to the broker."""
    WorkerBeat.objects.filter(hostname=hostname, pid=pid).delete()


def workers_lost_recover(*, limit=500):
    """Beat's sweep: recover the running steps and foreach items of lost workers (module docstring)."""
    cutoff = _lost_cutoff()
    if cutoff is None:
        return dict.fromkeys((*LOST_RECOVERIES, "workers_forgotten"), 0)
    known = list(WorkerBeat.objects.values_list("hostname", flat=True))
    unbeaten = cutoff - timedelta(seconds=settings.DAC_HEARTBEAT_INTERVAL_SECONDS)
    done = engine.steps_recover_lost(steps=_lost_steps(cutoff, known, unbeaten),
                                     items=_lost_items(cutoff, known, unbeaten), limit=limit)
    done["workers_forgotten"] = WorkerBeat.objects.filter(beat_at__lt=cutoff - FORGET_AFTER).delete()[0]
    return done


def _lost_cutoff():
    """A worker whose beat is older than this is lost; None while no worker has a row. Beats are
    written and judged in the database's time, so the hosts' clocks do not matter to them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT now(), max(beat_at) FROM {WorkerBeat._meta.db_table}")
        now, freshest = cursor.fetchone()
    if freshest is None:
        return None
    # Relative to the freshest beat when every beat is late: after a database outage, not one lost.
    reference = min(now, freshest + timedelta(seconds=settings.DAC_WORKER_BEAT_SECONDS))
    return reference - timedelta(seconds=settings.DAC_WORKER_LOST_SECONDS)


def _named_without_row(known):
    """A Q on a `worker` field: a worker name with no row. A unit claimed without a name (the
    engine called outside a worker) is left to the per-step threshold."""
    return ~Q(worker="") & ~Q(worker__in=known) if known else ~Q(worker="")


def _beat_before(cutoff):
    """A Q on a `worker` field: its worker's row beat last before `cutoff`. A subquery, not a list
    read once: the recoveries check it again in each transaction, so a worker that comes back
    under its name meanwhile is alive again for them."""
    return Q(Exists(WorkerBeat.objects.filter(hostname=OuterRef("worker"), beat_at__lt=cutoff)))


def _lost_steps(cutoff, known, unbeaten):
    """Steps held by a dead worker, or by one without a row whose heartbeat is older than `unbeaten`."""
    return _beat_before(cutoff) | (_named_without_row(known) & Q(heartbeat_at__lt=unbeaten))


def _lost_items(cutoff, known, unbeaten):
    """`_lost_steps` for foreach items."""
    return (_items_held_by(_beat_before(cutoff))
            | (_items_held_by(_named_without_row(known)) & Q(heartbeat_at__lt=unbeaten)))


def _items_held_by(attempt_filter):
    """Foreach items (a Q on StepItem) whose current attempt's record matches `attempt_filter`:
    the attempt, not the item, records the worker that claimed it."""
    attempts = StepAttempt.objects.filter(step_run_id=OuterRef("step_run_id"), item_index=OuterRef("index"),
                                          number=OuterRef("attempts"))
    return Q(Exists(attempts.filter(attempt_filter)))
