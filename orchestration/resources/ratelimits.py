"""Token buckets for a step's `rate_limit` (DESIGN §6.6): one Lua script does every read and
write of a bucket, so all workers share it atomically, on Redis's clock (TIME), not theirs.

A bucket is the hash {tokens, ts} at `dac:ratelimit:<name>`: it holds at most `limit` tokens
and refills at limit/per tokens a second. A missing key is a full bucket, so the key expires
once it would have refilled anyway.

A take that finds too few tokens reserves them: the level goes below zero by the cost, and the
caller is told when its turn comes (the time the debt is refilled). Each waiter so gets its own
turn and runs once, at it, instead of every waiter waking at each refill to race for one token.
A turn further off than MAX_RESERVE_SECONDS is not reserved: the caller comes back then.
"""
from dacproject.redis_client import client as redis_client

from .config import resource_config

KEY_PREFIX = "dac:ratelimit:"
WHERE_BUCKETS_COME_FROM = "a blueprint's coordination.rate_limits or DAC_RATE_LIMITS"

# Queued messages wait in the broker until their turn: well within Redis's visibility timeout.
MAX_RESERVE_SECONDS = 300

# ARGV: capacity, refill per second, cost, mode ("take", "refund" or "peek"), longest reservation.
# Returns {granted 0 (no) | 1 (now) | 2 (reserved for after `wait`), wait seconds, tokens left}; the
# numbers as strings, as Redis would truncate a Lua number to an integer.
_SCRIPT = """
local capacity, rate, cost, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then
  tokens, ts = capacity, now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local granted, wait = 0, 0
if mode == 'take' then
  if tokens >= cost then
    tokens, granted = tokens - cost, 1
  else
    wait = (cost - tokens) / rate
    if wait <= tonumber(ARGV[5]) then
      tokens, granted = tokens - cost, 2
    end
  end
elseif mode == 'refund' then
  tokens = math.min(capacity, tokens + cost)
end
if mode ~= 'peek' then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
  redis.call('EXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1)
end
return {granted, string.format('%.6f', wait), string.format('%.6f', tokens)}
"""
_script = {"registered": None}


class RateLimitUnusable(Exception):
    """A step's `rate_limit` cannot be served: its bucket is not defined, or its cost is more
    than the bucket ever holds."""


def bucket_get(name):
    """The bucket in force named `name`; RateLimitUnusable if there is none."""
    buckets = resource_config().buckets
    if name not in buckets:
        known = ", ".join(sorted(buckets)) or "none"
        raise RateLimitUnusable(f"rate-limit bucket '{name}' is not defined (known: {known}); buckets come from "
                                f"{WHERE_BUCKETS_COME_FROM}")
    return buckets[name]


def rate_limit_take(*, bucket, cost):
    """Take `cost` tokens from `bucket` (a config.Bucket): (granted, wait_seconds). Granted with no
    wait: run now. Granted with a wait: the tokens are reserved, run once it has passed without
    taking again. Not granted: nothing taken, ask again after the wait (at most MAX_RESERVE_SECONDS)."""
    if cost > bucket.limit:
        raise RateLimitUnusable(f"rate_limit cost {cost} is more than bucket '{bucket.name}' ever holds "
                                f"(limit {bucket.limit} per {bucket.per})")
    granted, wait, _ = _run(bucket, cost, "take")
    if int(granted) == 0:
        return False, MAX_RESERVE_SECONDS
    return True, float(wait)


def rate_limit_refund(*, bucket, cost):
    """Give back tokens taken for a step that then was not this task's to run (capped at the limit)."""
    _run(bucket, cost, "refund")


def bucket_levels(buckets=None):
    """Every bucket in force (or these) with the tokens it holds now, read without taking any:
    [{"name", "limit", "per", "tokens"}], by name; below zero while turns are reserved."""
    buckets = sorted(resource_config().buckets.values() if buckets is None else buckets, key=lambda b: b.name)
    pipe = redis_client().pipeline(transaction=False)
    for bucket in buckets:
        _run(bucket, 0, "peek", client=pipe)
    levels = pipe.execute()
    return [{"name": b.name, "limit": b.limit, "per": b.per, "tokens": round(float(level[2]), 3)}
            for b, level in zip(buckets, levels, strict=True)]


def _run(bucket, cost, mode, client=None):
    if _script["registered"] is None:
        _script["registered"] = redis_client().register_script(_SCRIPT)
    return _script["registered"](keys=[KEY_PREFIX + bucket.name], client=client,
                                 args=[bucket.limit, bucket.refill_per_second, cost, mode, MAX_RESERVE_SECONDS])
