"""Token buckets for a step's `rate_limit` (DESIGN §6.6): one Lua script does every read and
write of a bucket, so all workers share it atomically, on Redis's clock (TIME), not theirs.

A bucket is the hash {tokens, ts} at `dac:ratelimit:<name>`: it holds at most `limit` tokens
and refills at limit/per tokens a second. A missing key is a full bucket, so the key expires
once it would have refilled anyway.
"""
from dacproject.redis_client import client as redis_client

from .config import resource_config

KEY_PREFIX = "dac:ratelimit:"
WHERE_BUCKETS_COME_FROM = "a blueprint's coordination.rate_limits or DAC_RATE_LIMITS"

# ARGV: capacity, refill per second, cost, mode ("take", "refund" or "peek").
# Returns {granted 0|1, wait seconds, tokens left}; the numbers as strings, as Redis would
# truncate a Lua number to an integer.
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
    """Take `cost` tokens from `bucket` (a config.Bucket) if it holds them: (granted, wait_seconds),
    where wait_seconds is how long until it will hold `cost` tokens (0 when granted)."""
    if cost > bucket.limit:
        raise RateLimitUnusable(f"rate_limit cost {cost} is more than bucket '{bucket.name}' ever holds "
                                f"(limit {bucket.limit} per {bucket.per})")
    granted, wait, _ = _run(bucket, cost, "take")
    return bool(int(granted)), float(wait)


def rate_limit_refund(*, bucket, cost):
    """Give back tokens taken for a step that then was not this task's to run (capped at the limit)."""
    _run(bucket, cost, "refund")


def bucket_levels():
    """Every bucket in force with the tokens it holds now, read without taking any:
    [{"name", "limit", "per", "tokens"}], by name."""
    buckets = sorted(resource_config().buckets.values(), key=lambda b: b.name)
    pipe = redis_client().pipeline(transaction=False)
    for bucket in buckets:
        _run(bucket, 0, "peek", client=pipe)
    levels = pipe.execute()
    return [{"name": b.name, "limit": b.limit, "per": b.per, "tokens": round(float(level[2]), 3)}
            for b, level in zip(buckets, levels, strict=True)]


def _run(bucket, cost, mode, client=None):
    if _script["registered"] is None:
        _script["registered"] = redis_client().register_script(_SCRIPT)
    return _script["registered"](keys=[KEY_PREFIX + bucket.name], args=[bucket.limit, bucket.refill_per_second,
                                                                        cost, mode], client=client)
