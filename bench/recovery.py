"""Worker-loss recovery (issue 11): a whole worker killed (kill -9 of its session: the main process
and its pool processes) while it runs a step; the time from the kill to the instance's completion
on the bench's main worker, with the project's beat schedule running (the workers sweep, the
reconciler) as in production. The step's first attempt sleeps, its second returns at once, so the
figure is the recovery, not the work (bench/actions.py)."""
import random
import time

from .common import Beat, Worker, median, resilient, rnd, tasks_run, wait_finished, wait_until

REPS = 3
QUEUE = "bench-fragile"
LOSS = {"id": "bench-worker-loss", "steps": [
    {"id": "work", "action": "python:bench.actions.slow_first", "with": {"seconds": 120}, "queue": QUEUE},
]}
SWEEP_TASK = "orchestration.workers.tasks.workers_sweep"


def worker_loss_recoveries(env, main, reps=REPS):
    """[{recovery_s, detected_s, rerun_on}] over `reps` kills; `main` (a started Worker) takes the
    recovered steps."""
    beat = Beat(env).start()
    try:
        # Beat schedules the sweep on the main worker: measure only once it demonstrably runs.
        wait_until(lambda: tasks_run(main.hostname, SWEEP_TASK) > 0, timeout=60, interval=0.5,
                   what="beat's first workers sweep")
        return [resilient(lambda: _one_loss(env, main)) for _ in range(reps)]
    finally:
        beat.stop()


def _one_loss(env, main):
    from django.conf import settings

    from dacproject.celery import app
    from orchestration import engine
    from orchestration.models import StepAttempt, StepRun, WorkflowInstance

    doomed = Worker(env, name="doomed", concurrency=1, queues=QUEUE).start()
    try:
        instance = engine.instance_start(workflow=LOSS["id"], context={}, actor="bench")
        run = wait_until(lambda: StepRun.objects.filter(instance_id=instance.id, step_id="work", status="running",
                                                        worker=doomed.hostname).first(),
                         timeout=60, what="the step running on the doomed worker")
        app.control.add_consumer(QUEUE, destination=[main.hostname], reply=True, timeout=2)
        # Killed anywhere in its beat cycle, as a crash would be (the worst case is just after a beat).
        time.sleep(random.uniform(0, settings.DAC_WORKER_BEAT_SECONDS))
        killed = time.time()
        doomed.kill()
        wait_finished([instance.id], timeout=120)
    finally:
        app.control.cancel_consumer(QUEUE, destination=[main.hostname], reply=True, timeout=2)
        doomed.kill()
    finished_at = WorkflowInstance.objects.get(id=instance.id).finished_at
    lost = StepAttempt.objects.get(step_run=run, item_index=None, number=1)
    rerun = StepAttempt.objects.get(step_run=run, item_index=None, number=2)
    return {"recovery_s": finished_at.timestamp() - killed, "detected_s": lost.finished_at.timestamp() - killed,
            "lost_error": lost.error_type, "rerun_on_main": rerun.worker == main.hostname}


def measure(env, main, reps):
    """(figures, details): `worker_loss_recovery_s` is the worst (max) of the kills."""
    runs = worker_loss_recoveries(env, main, reps)
    seconds = [r["recovery_s"] for r in runs]
    noticed = ", ".join(f"{r['detected_s']:.1f}" for r in runs)
    print(f"bench: whole worker killed mid-step -> instance completed on another: max {max(seconds):.2f} s, "
          f"median {median(seconds):.2f} s over {len(runs)} kills (its step noticed lost after {noticed} s)")
    return ({"worker_loss_recovery_s": max(seconds), "worker_loss_recovery_median_s": median(seconds)},
            [{k: rnd(v) if isinstance(v, float) else v for k, v in r.items()} for r in runs])
