"""Resources figure (DESIGN §10): 1,000 starts from several threads against `max_concurrent: 10`,
with the most instances ever running at once — sampled while it runs, and exact from the stored
timestamps (an admitted instance's start is stamped after the end of the one whose slot it took)
— and the time for all to finish."""
import threading
import time

from .common import wait_until

CAPPED_STARTS = 1000
CAP = 10
THREADS = 4
SAMPLE_EVERY_S = 0.002
CAPPED = {"id": "bench-capped", "max_concurrent": CAP,
          "steps": [{"id": "a", "action": "noop"}, {"id": "b", "action": "noop", "depends_on": ["a"]}]}

_TIMELINE_SQL = """
SELECT coalesce(max(running), 0) FROM (
  SELECT sum(delta) OVER (ORDER BY at, delta) AS running FROM (
    SELECT started_at AS at, 1 AS delta FROM orchestration_workflowinstance WHERE definition_id = %(d)s
    UNION ALL
    SELECT finished_at, -1 FROM orchestration_workflowinstance WHERE definition_id = %(d)s
  ) AS changes WHERE at IS NOT NULL) AS timeline
"""


def max_concurrent_run(n=CAPPED_STARTS, threads=THREADS):
    """{violations, sampled_max, timeline_max, lost, seconds}: violations counts samples over the
    cap plus the timeline's excess over it (both must be 0)."""
    from django.db import connection

    from orchestration import engine
    from orchestration.models import ConcurrencyPool, WorkflowInstance
    from registry.models import WorkflowDefinition

    definition = WorkflowDefinition.objects.get(key=CAPPED["id"])
    WorkflowInstance.objects.filter(definition=definition).delete()  # a retried run starts from nothing
    ConcurrencyPool.objects.filter(key=f"workflow:{CAPPED['id']}").delete()
    running = WorkflowInstance.objects.filter(definition=definition, status__in=["running", "waiting"])
    samples, done = [], threading.Event()

    def sample():
        try:
            while not done.wait(SAMPLE_EVERY_S):  # paced: a tight loop would take a core from the run
                samples.append(running.count())
        finally:
            connection.close()

    def starter(count):
        try:
            for _ in range(count):
                engine.instance_start(workflow=CAPPED["id"], context={}, actor="bench")
        finally:
            connection.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    starters = [threading.Thread(target=starter, args=(n // threads,)) for _ in range(threads)]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    total = n // threads * threads
    finished = WorkflowInstance.objects.filter(definition=definition, status="completed")
    try:
        wait_until(lambda: finished.count() >= total, timeout=600, interval=0.1, what=f"{total} capped instances")
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - began
    with connection.cursor() as cursor:
        cursor.execute(_TIMELINE_SQL, {"d": definition.id})
        timeline_max = cursor.fetchone()[0]
    over = sum(1 for s in samples if s > CAP) + max(0, timeline_max - CAP)
    return {"violations": over, "sampled_max": max(samples, default=0), "timeline_max": timeline_max,
            "samples": len(samples), "lost": total - finished.count(), "seconds": seconds, "starts": total}
