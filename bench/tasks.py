"""The raw Celery baseline: a no-op task registered in the same app and worker as the engine.

The bench worker loads this module with `--include bench.tasks`; nothing in dacproject's
settings refers to it. A task records its finish time in Redis (one round trip) only when
the bench asks it to, so the baseline stays as close to "nothing" as a measurable task can.
"""
import time

import redis
from celery import shared_task
from django.conf import settings

_redis = None


def _client():
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL)
    return _redis


@shared_task(name="bench.noop", ignore_result=True)
def noop(mark=None, count=None):
    """Do nothing. `mark`: push the finish time onto this Redis list (the end of a chain).
    `count=(key, total)`: increment `key`; the task that brings it to `total` pushes the finish
    time onto `<key>:done` (the end of a group)."""
    if mark:
        _client().rpush(mark, repr(time.time()))
    elif count:
        key, total = count
        if _client().incr(key) == total:
            _client().rpush(f"{key}:done", repr(time.time()))
