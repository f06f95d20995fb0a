"""Rate limits (DESIGN §6.6) on two real worker processes sharing one Redis token bucket: the
global rate holds, no step is dropped, and a step whose bucket is gone fails with a clear reason."""
import uuid

import pytest

from orchestration.models import StepAttempt, StepItem, StepRun
from registry.changes import registry_changed
from registry.models import Blueprint
from tests.support.helpers import apply_spec, apply_yaml, finished, start, step, wait_until

pytestmark = pytest.mark.integration

LIMIT = 5  # tokens a second, and at most at once
INSTANCES, ITEMS = 20, 6


@pytest.fixture
def second_worker(live):
    hostname = live.start(concurrency=2)
    yield hostname
    live.stop(hostname)


def limits(bucket, *, workflows="[]"):
    """A blueprint defining `bucket`; applying it tells every worker (the registry change number)."""
    name = f"limits-{bucket}"
    apply_yaml(f"""
name: {name}
coordination:
  rate_limits: {{{bucket}: {{limit: {LIMIT}, per: second}}}}
workflows: {workflows}
""")
    return name


def test_two_workers_never_start_steps_faster_than_the_bucket_allows_and_drop_none(live, second_worker):
    bucket = f"rl-{uuid.uuid4().hex[:8]}"
    limited = {"action": "noop", "rate_limit": {"key": bucket}}
    limits(bucket)
    # `call` follows a plain step on the same queue: it must still go through the broker for its tokens.
    apply_spec({"id": "paced", "steps": [{"id": "prep", "action": "noop"},
                                         {"id": "call", **limited, "depends_on": ["prep"]}]})
    apply_spec({"id": "paced-items", "steps": [{"id": "each", **limited, "foreach": list(range(ITEMS))}]})
    instances = [start("paced") for _ in range(INSTANCES)] + [start("paced-items")]

    for instance in instances:
        assert finished(instance, timeout=30).status == "completed"
    runs = StepRun.objects.filter(instance_id__in=[i.id for i in instances], step_id__in=["call", "each"])
    assert runs.count() == INSTANCES + 1 and all(r.attempts == 1 for r in runs)  # a deferral is no attempt
    assert StepItem.objects.filter(step_run__in=runs, status="completed", attempts=1).count() == ITEMS
    attempts = StepAttempt.objects.filter(step_run__in=runs)
    assert attempts.count() == INSTANCES + ITEMS  # each ran once: none dropped, none twice
    starts = sorted(attempts.values_list("started_at", flat=True))
    for k, at in enumerate(starts):
        elapsed = (at - starts[0]).total_seconds()
        # k + 1 started by then: at most the bucket's burst plus its refill (and one of clock slack).
        assert k + 1 <= LIMIT + LIMIT * elapsed + 1, f"{k + 1} steps started within {elapsed:.3f}s"
    # The limit did the pacing: unlimited, these no-ops would all start within a fraction of a second.
    assert (starts[-1] - starts[0]).total_seconds() >= (len(starts) - LIMIT) / LIMIT * 0.8
    assert set(attempts.values_list("worker", flat=True)) == {live.default, second_worker}


def test_a_step_whose_bucket_is_no_longer_defined_fails_its_attempt_naming_the_bucket(live):
    bucket = f"gone-{uuid.uuid4().hex[:8]}"
    blueprint = limits(bucket)
    apply_spec({"id": "orphaned", "steps": [{"id": "call", "action": "noop", "rate_limit": {"key": bucket}}]})
    Blueprint.objects.filter(name=blueprint).delete()  # the configuration changed after registration
    registry_changed()
    instance = finished(start("orphaned"), timeout=15)
    assert instance.status == "failed"
    run = step(instance, "call")
    assert run.status == "failed" and run.error["type"] == "RateLimitError"
    assert f"bucket '{bucket}' is not defined" in run.error["message"]
    assert "coordination.rate_limits" in run.error["message"] and "DAC_RATE_LIMITS" in run.error["message"]
    wait_until(lambda: not StepAttempt.objects.filter(step_run=run, status="running").exists(), timeout=5)
