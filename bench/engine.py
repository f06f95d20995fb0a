"""The engine's figures (DESIGN §10 a-c): per-step latency against a raw chain, diamond throughput
against a raw group, and approve -> the approved step running."""
import time
import uuid

from .common import median, ms, start_instance, wait_finished, wait_until

LINEAR_STEPS = 50
DIAMOND_INSTANCES = 200
DIAMOND_STEPS = 5
GROUP_TASKS = 1000
APPROVALS = 200


def linear_spec(wf_id, n, queue=None):
    steps = []
    for i in range(n):
        step = {"id": f"s{i:02d}", "action": "noop"}
        if i:
            step["depends_on"] = [f"s{i - 1:02d}"]
        if queue:
            step["queue"] = queue
        steps.append(step)
    return {"id": wf_id, "steps": steps}


DIAMOND = {"id": "bench-diamond", "steps": [
    {"id": "a", "action": "noop"},
    {"id": "b", "action": "noop", "depends_on": ["a"]},
    {"id": "c", "action": "noop", "depends_on": ["a"]},
    {"id": "d", "action": "noop", "depends_on": ["a"]},
    {"id": "e", "action": "noop", "depends_on": ["b", "c", "d"]},
]}

APPROVAL = {"id": "bench-approval", "steps": [
    {"id": "gate", "action": "noop", "approval": True},
    {"id": "after", "action": "noop", "depends_on": ["gate"]},
]}


# --- (a) per-step latency ---------------------------------------------------------------------

def engine_linear():
    """One linear 50-step noop instance; per-step latency from its DB timestamps, plus where the
    time between two steps goes (from the step runs' ready/started/finished timestamps)."""
    from orchestration.models import StepRun, WorkflowInstance

    instance = start_instance("bench-linear-50")
    wait_finished([instance.id], timeout=120)
    instance = WorkflowInstance.objects.get(id=instance.id)
    total = (instance.finished_at - instance.started_at).total_seconds()
    runs = list(StepRun.objects.filter(instance=instance).order_by("step_id")
                .values_list("ready_at", "started_at", "finished_at"))
    gaps = {"finish_to_next_ready": [], "ready_to_started": [], "started_to_finished": []}
    for i, (ready, started, finished) in enumerate(runs):
        gaps["ready_to_started"].append(ms((started - ready).total_seconds()))
        gaps["started_to_finished"].append(ms((finished - started).total_seconds()))
        if i:
            gaps["finish_to_next_ready"].append(ms((ready - runs[i - 1][2]).total_seconds()))
    return ms(total) / LINEAR_STEPS, {k: median(v) for k, v in gaps.items()}


def raw_chain(redis_client):
    """A raw Celery chain of 50 no-op tasks; the last one pushes its finish time to Redis."""
    from celery import chain

    from bench.tasks import noop

    key = f"bench:chain:{uuid.uuid4().hex}"
    signature = chain(*[noop.si() for _ in range(LINEAR_STEPS - 1)], noop.si(mark=key))
    started = time.time()
    signature.apply_async()
    popped = redis_client.blpop([key], timeout=120)
    if popped is None:
        raise TimeoutError("raw chain did not finish in 120 s")
    return ms(float(popped[1]) - started) / LINEAR_STEPS


# --- (b) throughput -----------------------------------------------------------------------------

def engine_diamonds(n):
    from django.db.models import Max, Min

    from orchestration.models import WorkflowInstance

    began = time.monotonic()
    ids = [start_instance("bench-diamond").id for _ in range(n)]
    starting = time.monotonic() - began
    wait_finished(ids, timeout=600)
    span = WorkflowInstance.objects.filter(id__in=ids).aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return n * DIAMOND_STEPS / seconds, {"span_s": seconds, "starting_s": starting}


def raw_group(redis_client, n):
    from celery import group

    from bench.tasks import noop

    key = f"bench:group:{uuid.uuid4().hex}"
    signature = group(noop.si(count=(key, n)) for _ in range(n))
    started = time.time()
    signature.apply_async()
    dispatching = time.time() - started
    popped = redis_client.blpop([f"{key}:done"], timeout=600)
    if popped is None:
        raise TimeoutError("raw group did not finish in 600 s")
    seconds = float(popped[1]) - started
    return n / seconds, {"span_s": seconds, "dispatching_s": dispatching}


# --- (c) approve -> the approved step running -------------------------------------------------

def approvals(n, *, gap=0.02):
    """Park n instances on `gate`, then approve them one by one: the latency is from the moment
    step_decide returned (committed, message published) to the gate's StepRun.started_at, which a
    worker sets when it claims the step. Each approval waits for the previous step to start."""
    from governance.escalations.services import step_decide
    from orchestration.models import StepRun

    ids = [start_instance("bench-approval").id for _ in range(n)]
    wait_until(lambda: StepRun.objects.filter(instance_id__in=ids, step_id="gate",
                                              status="waiting_approval").count() == n,
               timeout=120, interval=0.1, what=f"{n} parked approvals")
    after_return, after_call, decide = [], [], []
    for instance_id in ids:
        called = time.time()
        step_decide(instance_id=instance_id, step_id="gate", decision="approve", actor="bench")
        returned = time.time()
        gate = StepRun.objects.filter(instance_id=instance_id, step_id="gate")
        started = wait_until(lambda gate=gate: gate.values_list("started_at", flat=True).first(),
                             timeout=30, interval=0.002, what="the approved step to start")
        after_return.append(ms(started.timestamp() - returned))
        after_call.append(ms(started.timestamp() - called))
        decide.append(ms(returned - called))
        time.sleep(gap)
    wait_finished(ids, timeout=120)
    return after_return, after_call, decide
