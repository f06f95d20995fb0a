"""The token-bucket script against the real Redis: bursts, refill, wait times, refunds, and many
takers at once never getting more than the bucket holds plus what it refilled."""
import multiprocessing
import threading
import time
import uuid

import pytest

from dacproject.redis_client import client as redis_client
from orchestration.resources.config import Bucket
from orchestration.resources.deferral import step_defer
from orchestration.resources.ratelimits import (
    KEY_PREFIX,
    MAX_RESERVE_SECONDS,
    RateLimitUnusable,
    bucket_get,
    bucket_levels,
    rate_limit_refund,
    rate_limit_take,
)
from orchestration.states import StepStatus as S
from registry.changes import registry_changed
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
        registry_changed()
    yield set_limits
    registry_changed()


def test_a_fresh_bucket_grants_a_burst_up_to_its_limit_then_reserves_each_taker_its_own_turn():
    bucket = fresh_bucket(5)
    results = takes(bucket, 8)
    assert all(granted for granted, _ in results)
    assert all(wait == 0 for _, wait in results[:5])
    turns = [wait for _, wait in results[5:]]  # one token each at 5 a second, less what trickled in
    assert 0.15 < turns[0] <= 0.2 and 0.35 < turns[1] <= 0.4 and 0.55 < turns[2] <= 0.6
    assert tokens_now(bucket) < -2.5  # the reserved turns are owed


def test_a_turn_is_the_time_until_the_cost_is_there_after_the_turns_before_it():
    bucket = fresh_bucket(6, "minute")  # 0.1 token a second
    takes(bucket, 6)
    granted, wait = rate_limit_take(bucket=bucket, cost=2)
    assert granted and 19.9 < wait <= 20.0
    granted, wait = rate_limit_take(bucket=bucket, cost=1)
    assert granted and 29.9 < wait <= 30.0


def test_a_turn_further_off_than_the_longest_reservation_is_not_reserved():
    bucket = fresh_bucket(1, "minute")  # a turn a minute: the seventh is 360 s away
    turns = takes(bucket, 6)
    assert all(granted for granted, _ in turns) and 299.9 < turns[5][1] <= 300
    before = tokens_now(bucket)
    assert rate_limit_take(bucket=bucket, cost=1) == (False, MAX_RESERVE_SECONDS)
    assert tokens_now(bucket) == pytest.approx(before, abs=0.01)  # nothing was taken


def test_the_bucket_refills_at_its_rate_and_grants_at_once_when_it_holds_the_cost():
    bucket = fresh_bucket(20)
    assert all(wait == 0 for _, wait in takes(bucket, 20))
    emptied = time.monotonic()
    wait_until(lambda: tokens_now_refilled(bucket) >= 4, timeout=2, interval=0.01, message="four tokens to refill")
    assert rate_limit_take(bucket=bucket, cost=4) == (True, 0)
    assert 0.18 <= time.monotonic() - emptied < 0.5


def tokens_now_refilled(bucket):
    """The level now, refill included, read without taking."""
    return next(level["tokens"] for level in bucket_levels([bucket]))


def test_a_refund_gives_tokens_back_but_never_past_the_limit():
    bucket = fresh_bucket(5, "hour")  # no refill to speak of during the test
    takes(bucket, 3)
    rate_limit_refund(bucket=bucket, cost=2)
    assert 4.0 <= tokens_now(bucket) < 4.01
    rate_limit_refund(bucket=bucket, cost=100)
    assert tokens_now(bucket) == 5.0
    assert [wait == 0 for _, wait in takes(bucket, 6)] == [True] * 5 + [False]


def test_the_key_expires_once_the_bucket_would_be_full_again():
    bucket = fresh_bucket(10)
    takes(bucket, 10)
    assert 1 <= redis_client().ttl(KEY_PREFIX + bucket.name) <= 2


def test_a_cost_above_the_limit_is_refused_rather_than_waited_for():
    with pytest.raises(RateLimitUnusable, match="cost 6 is more than bucket .* ever holds"):
        rate_limit_take(bucket=fresh_bucket(5), cost=6)


def _hammer(bucket, seconds, threads):
    """Take one token at a time from `threads` threads until `seconds` pass: the (wall-clock) time
    each granted taker may run, and how many were refused."""
    turns, refused = [], []

    def loop():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            granted, wait = rate_limit_take(bucket=bucket, cost=1)
            (turns.append(time.time() + wait) if granted else refused.append(wait))

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return turns, len(refused)


def test_many_processes_and_threads_taking_at_once_never_get_turns_faster_than_limit_plus_refill():
    bucket = fresh_bucket(2)  # 2 at once, then 2 a second: 300 s of turns are 602
    started = time.time()
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.starmap(_hammer, [(bucket, 1.0, 4)] * 4)
    turns = sorted(t for ts, _ in results for t in ts)
    refused = sum(n for _, n in results)
    assert refused > 0  # past the longest reservation, takers are told to come back
    assert 2 + 2 * (MAX_RESERVE_SECONDS - 1) <= len(turns) <= 2 + 2 * (MAX_RESERVE_SECONDS + 1)
    for k, turn in enumerate(turns):  # the k-th turn comes no sooner than the bucket allows
        assert k + 1 <= 2 + 2 * (turn - started) + 1, f"turn {k + 1} at {turn - started:.3f} s"


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
