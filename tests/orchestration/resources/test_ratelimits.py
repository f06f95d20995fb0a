"""The token-bucket script against the real Redis: bursts, refill, wait times, refunds, and many
takers at once never getting more than the bucket holds plus what it refilled."""
import multiprocessing
import threading
import time
import uuid

import pytest

from dacproject.redis_client import client as redis_client
from governance.escalations.policy import policies_changed
from orchestration.resources.config import Bucket
from orchestration.resources.deferral import step_defer
from orchestration.resources.ratelimits import (
    KEY_PREFIX,
    RateLimitUnusable,
    bucket_get,
    bucket_levels,
    rate_limit_refund,
    rate_limit_take,
)
from orchestration.states import StepStatus as S
from tests.support.helpers import apply_spec, start, step, wait_until


def fresh_bucket(limit, per="second"):
    """A bucket no other test (or earlier run) has touched."""
    return Bucket(f"t-{uuid.uuid4().hex[:10]}", limit, per)


def takes(bucket, n, cost=1):
    return [rate_limit_take(bucket=bucket, cost=cost) for _ in range(n)]


def tokens_now(bucket):
    """The tokens stored at the last change (a missing key is a full bucket)."""
    return float(redis_client().hget(KEY_PREFIX + bucket.name, "tokens") or bucket.limit)


@pytest.fixture
def env_limits(settings, db):
    """Set DAC_RATE_LIMITS for this test; the limits in force are re-read before and after it."""
    def set_limits(text):
        settings.DAC_RATE_LIMITS = text
        policies_changed()
    yield set_limits
    policies_changed()


def test_a_fresh_bucket_grants_a_burst_up_to_its_limit_then_says_how_long_to_wait():
    bucket = fresh_bucket(5)
    results = takes(bucket, 6)
    assert [granted for granted, _ in results] == [True] * 5 + [False]
    assert all(wait == 0 for _, wait in results[:5])
    assert 0.15 < results[5][1] <= 0.2  # one token at 5 a second, less what trickled in meanwhile


def test_wait_is_the_time_until_the_cost_is_there():
    bucket = fresh_bucket(6, "minute")  # 0.1 token a second
    takes(bucket, 6)
    granted, wait = rate_limit_take(bucket=bucket, cost=2)
    assert not granted
    assert 19.9 < wait <= 20.0


def test_the_bucket_refills_at_its_rate_and_grants_once_the_wait_is_over():
    bucket = fresh_bucket(20)
    assert all(granted for granted, _ in takes(bucket, 20))
    emptied = time.monotonic()
    granted, wait = rate_limit_take(bucket=bucket, cost=4)
    assert not granted and 0.18 < wait <= 0.2
    wait_until(lambda: rate_limit_take(bucket=bucket, cost=4)[0], timeout=2, interval=0.01,
               message="four tokens to refill")
    assert 0.18 <= time.monotonic() - emptied < 0.5


def test_a_refund_gives_tokens_back_but_never_past_the_limit():
    bucket = fresh_bucket(5, "hour")  # no refill to speak of during the test
    takes(bucket, 3)
    rate_limit_refund(bucket=bucket, cost=2)
    assert 4.0 <= tokens_now(bucket) < 4.01
    rate_limit_refund(bucket=bucket, cost=100)
    assert tokens_now(bucket) == 5.0
    assert [granted for granted, _ in takes(bucket, 6)] == [True] * 5 + [False]


def test_the_key_expires_once_the_bucket_would_be_full_again():
    bucket = fresh_bucket(10)
    takes(bucket, 10)
    assert 1 <= redis_client().ttl(KEY_PREFIX + bucket.name) <= 2


def test_a_cost_above_the_limit_is_refused_rather_than_waited_for():
    with pytest.raises(RateLimitUnusable, match="cost 6 is more than bucket .* ever holds"):
        rate_limit_take(bucket=fresh_bucket(5), cost=6)


def _hammer(bucket, seconds, threads):
    """Take one token at a time from `threads` threads until `seconds` pass; how many were granted."""
    granted = []

    def loop():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            granted.append(rate_limit_take(bucket=bucket, cost=1)[0])

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(granted), len(granted)


def test_many_processes_and_threads_taking_at_once_never_get_more_than_limit_plus_refill():
    bucket = fresh_bucket(20)  # 20 at once, then 20 a second
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.starmap(_hammer, [(bucket, 1.0, 4)] * 4)
    elapsed = time.monotonic() - started
    granted, tried = sum(g for g, _ in results), sum(t for _, t in results)
    assert tried > 10 * granted  # the bucket was contended all along
    assert granted <= 20 + 20 * elapsed + 1
    assert granted >= 20 + 20 * 0.9  # and it did hand out what it had and what it refilled


def test_buckets_in_force_are_found_by_name_and_their_levels_read_without_taking(env_limits):
    name = f"lv-{uuid.uuid4().hex[:8]}"
    env_limits(f"{name}=10/minute,{name}-b=3/second")
    bucket = bucket_get(name)
    assert (bucket.limit, bucket.per) == (10, "minute")
    takes(bucket, 3)
    levels = {level["name"]: level for level in bucket_levels() if level["name"].startswith(name)}
    assert levels[f"{name}-b"] == {"name": f"{name}-b", "limit": 3, "per": "second", "tokens": 3.0}
    assert levels[name]["limit"] == 10 and levels[name]["per"] == "minute"
    assert 7.0 <= levels[name]["tokens"] < 7.1
    again = {level["name"]: level["tokens"] for level in bucket_levels()}
    assert again[name] >= levels[name]["tokens"]  # reading took nothing
    with pytest.raises(RateLimitUnusable, match="bucket 'nope' is not defined .*DAC_RATE_LIMITS"):
        bucket_get("nope")


@pytest.mark.django_db
def test_a_deferral_moves_ready_at_only_while_the_step_waits_for_that_attempt():
    apply_spec({"id": "deferred", "steps": [{"id": "a", "action": "noop"}]})
    instance = start("deferred")
    run = step(instance, "a")
    assert run.status == S.READY
    assert not step_defer(step_run_id=run.id, attempt=2, wait_seconds=30)  # not the attempt it waits for
    assert step_defer(step_run_id=run.id, attempt=1, wait_seconds=30)
    moved = step(instance, "a").ready_at
    assert 29 < (moved - run.ready_at).total_seconds() < 31
    assert step_defer(step_run_id=run.id, attempt=1, wait_seconds=1)
    assert step(instance, "a").ready_at == moved  # never earlier: another message may wait longer
