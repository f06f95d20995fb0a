"""Retry delays (pure)."""
import random


def retry_delay(policy, failed_attempt, *, rng=random.random):
    """Seconds to wait before the attempt after `failed_attempt` (1-based)."""
    base = policy["base_seconds"]
    if policy["backoff"] == "exponential":
        delay = base * (2 ** (failed_attempt - 1))
    elif policy["backoff"] == "linear":
        delay = base * failed_attempt
    else:
        delay = base
    delay = min(delay, policy["max_seconds"])
    if policy["jitter"]:
        # "Equal jitter": keeps at least half the delay, spreads the rest to avoid thundering herds.
        delay = delay / 2 + rng() * delay / 2
    return max(0.0, delay)


def next_retry(policy, used_attempts):
    """Seconds until the next attempt after `used_attempts` tries, or None when the budget is spent."""
    if used_attempts >= policy["max_attempts"]:
        return None
    return retry_delay(policy, used_attempts)
