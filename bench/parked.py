"""Parked instances (DESIGN §10): 10,000 instances parked on approvals hold no worker and no
message; then all are approved and all complete. The worker's memory (main + pool processes) is
taken before, while parked and after."""
import threading
import time

from .common import resilient, rnd, wait_until

PARKED = 10_000
THREADS = 4
# One step: what is measured is parking and resuming, and the worker's share of a 2-core machine
# goes to running the approved gates rather than a step after each.
PARKED_SPEC = {"id": "bench-parked", "steps": [{"id": "gate", "action": "noop", "approval": True}]}


def parked_run(worker, n=PARKED, threads=THREADS):
    """{completed, held_tasks, queued_messages, started_s, parked_s, approved_s, completed_s, rss_mb}."""
    from django.utils import timezone

    from orchestration.models import StepRun, WorkflowInstance

    # This run's instances: a repeated run (the database restarted under it) counts only its own.
    mine = WorkflowInstance.objects.filter(definition__key=PARKED_SPEC["id"], created_at__gte=timezone.now())
    rss = {"before": worker.rss_mb()}
    began = time.perf_counter()
    ids = _in_threads(_start, n, threads)
    started = time.perf_counter()
    gates = StepRun.objects.filter(instance__in=mine, step_id="gate")
    wait_until(lambda: gates.filter(status="waiting_approval").count() == n, timeout=600, interval=0.5,
               what=f"{n} parked approvals")
    parked = time.perf_counter()
    held, queued = _held(worker.hostname)
    rss["parked"] = worker.rss_mb()
    _in_threads(_approve, ids, threads)
    approved = time.perf_counter()
    done = mine.filter(status="completed")
    try:
        wait_until(lambda: done.count() == n, timeout=900, interval=0.5, what=f"{n} approved instances to complete")
    except TimeoutError:  # reported: the figure is how many completed
        pass
    completed = time.perf_counter()
    rss["after"] = worker.rss_mb()
    return {"completed": done.count(), "held_tasks": held, "queued_messages": queued,
            "started_s": started - began, "parked_s": parked - began, "approved_s": approved - parked,
            "completed_s": completed - parked, "rss_mb": rss}


def _start(count):
    from orchestration import engine

    return [engine.instance_start(workflow=PARKED_SPEC["id"], context={}, actor="bench").id for _ in range(count)]


def _approve(ids):
    from governance.escalations.services import step_decide

    for instance_id in ids:
        step_decide(instance_id=instance_id, step_id="gate", decision="approve", actor="bench")
    return ids


def _in_threads(work, items, threads):
    """`work` over `items` (a count, split evenly, or a list, in slices) from `threads` threads;
    their results, concatenated."""
    from django.db import connection

    parts = ([items // threads + (i < items % threads) for i in range(threads)] if isinstance(items, int)
             else [items[i::threads] for i in range(threads)])
    results, errors = [None] * threads, []

    def run(index):
        try:
            results[index] = work(parts[index])
        except Exception as exc:  # noqa: BLE001 - raised again below, in the caller's thread
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return [value for result in results for value in result]


def _held(hostname):
    """(tasks the worker holds: active + reserved + scheduled, messages waiting in its queue)."""
    import redis
    from django.conf import settings

    from dacproject.celery import app

    inspector = app.control.inspect(destination=[hostname], timeout=2)
    answers = [inspector.active(), inspector.reserved(), inspector.scheduled()]
    if any(hostname not in (answer or {}) for answer in answers):
        raise RuntimeError(f"worker {hostname} did not answer `inspect`")
    held = sum(len(answer[hostname]) for answer in answers)
    client = redis.Redis.from_url(settings.REDIS_URL)
    queued = sum(client.llen(key) for key in client.scan_iter(match="default*") if client.type(key) == b"list")
    return held, queued


def measure(worker, n):
    """(figures, details) of one parked run of `n` instances."""
    run = resilient(lambda: parked_run(worker, n))
    rss = run["rss_mb"]
    print(f"bench: {n:,} parked on approvals in {run['parked_s']:.1f} s; worker held {run['held_tasks']} tasks, "
          f"{run['queued_messages']} queued; approved in {run['approved_s']:.1f} s, {run['completed']:,} completed "
          f"{run['completed_s']:.1f} s after the first approval; worker RSS {rss['before']:.0f} -> "
          f"{rss['parked']:.0f} (parked) -> {rss['after']:.0f} MiB (after)")
    figures = {"parked_10k_completed": run["completed"], "parked_held_tasks": run["held_tasks"]}
    return figures, {k: ({m: rnd(x) for m, x in v.items()} if isinstance(v, dict) else rnd(v)) for k, v in run.items()}
