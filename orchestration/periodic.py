"""What a beat (periodic) task did, said in one log line.

The housekeeping tasks run every 1-10 s and almost always find nothing to do: a run that did
nothing logs at DEBUG, a run that did something logs one INFO line saying what, e.g.
"reconcile: re-sent 2 ready steps, recovered 1 stale attempt". (Celery's own per-run lines for
these tasks are dropped by dacproject.logfilters.)
"""

#: count key -> (verb, singular noun, plural noun), for the counts the periodic tasks return.
PHRASES = {
    # orchestration.engine.reconcile
    "recovered_stale": ("recovered", "stale attempt", "stale attempts"),
    "redispatched": ("re-sent", "ready step", "ready steps"),
    "joined": ("rejoined", "foreach step", "foreach steps"),
    "compensations": ("resumed", "compensation", "compensations"),
    "settled": ("cancelled", "lost step of a failing instance", "lost steps of failing instances"),
    # orchestration.events
    "reactions_resent": ("re-sent", "event reaction", "event reactions"),
    "waits_resumed": ("resumed", "event wait", "event waits"),
    "schedules_released": ("released", "buffered schedule run", "buffered schedule runs"),
    "waits_timed_out": ("timed out", "event wait", "event waits"),
    "debounced_starts": ("fired", "debounce window", "debounce windows"),
    "idempotency_keys_forgotten": ("forgot", "expired idempotency key", "expired idempotency keys"),
    # orchestration.spawning
    "parents_resumed": ("resumed", "parent of an ended child", "parents of ended children"),
    "items_redispatched": ("re-sent", "spawn step's items", "spawn steps' items"),
    # governance.notifications
    "notifications_resent": ("re-sent", "notification", "notifications"),
    # orchestration.engine.admission, orchestration.resources
    "slots_freed": ("freed", "concurrency slot", "concurrency slots"),
    "pools_corrected": ("corrected", "pool count", "pool counts"),
    "queued_started": ("started", "queued instance", "queued instances"),
    "quota_released": ("released", "quota-held instance", "quota-held instances"),
    # orchestration.engine.instances
    "instances_timed_out": ("timed out", "instance", "instances"),
    # orchestration.workers
    "steps_recovered": ("recovered", "step of a lost worker", "steps of lost workers"),
    "foreach_rerun": ("re-sent", "foreach step of a lost worker", "foreach steps of lost workers"),
    "steps_settled": ("cancelled", "step of a lost worker in a failing instance",
                      "steps of lost workers in failing instances"),
    "workers_forgotten": ("forgot", "dead worker", "dead workers"),
}


def describe(done):
    """"re-sent 2 ready steps, recovered 1 stale attempt" for the non-zero counts of `done`
    ({key: count}); "" when all are zero."""
    parts = []
    for key, count in done.items():
        if not count:
            continue
        verb, one, many = PHRASES.get(key, (key.replace("_", " ") + ":", "", ""))
        parts.append(" ".join(filter(None, (verb, str(count), one if count == 1 else many))))
    return ", ".join(parts)


def log_outcome(logger, task, done):
    """One INFO line `<task>: <what it did>` when `done` has a non-zero count, else DEBUG."""
    said = describe(done)
    if said:
        logger.info("%s: %s", task, said)
    else:
        logger.debug("%s: nothing to do", task)
    return done
