import pytest

from orchestration.engine.backoff import retry_delay

POLICY = {"base_seconds": 2.0, "max_seconds": 30.0, "jitter": False}


@pytest.mark.parametrize(
    "backoff, delays",
    [("exponential", [2, 4, 8, 16, 30]), ("linear", [2, 4, 6, 8, 10]), ("fixed", [2, 2, 2, 2, 2])],
)
def test_backoff_shapes_are_capped_by_max_seconds(backoff, delays):
    policy = {**POLICY, "backoff": backoff}
    assert [retry_delay(policy, n) for n in range(1, 6)] == delays


def test_jitter_keeps_at_least_half_and_at_most_the_full_delay():
    policy = {**POLICY, "backoff": "fixed", "jitter": True}
    assert retry_delay(policy, 1, rng=lambda: 0.0) == 1.0
    assert retry_delay(policy, 1, rng=lambda: 1.0) == 2.0
    assert retry_delay(policy, 1, rng=lambda: 0.5) == 1.5
