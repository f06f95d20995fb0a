"""Token quotas per workflow type (DESIGN §6.6) and the resource usage the dashboard reads.

The engine runs in this process (tests/orchestration/resources/inprocess.py), so the quota set
here holds: no worker has to be started with it. The rolling hour is moved on by ageing the
ledger's rows rather than by waiting.
"""
import pytest
import yaml
from django.db.models import F
from django.utils import timezone

from governance.escalations.models import Escalation
from orchestration import selectors
from orchestration.engine.plan import plan_for_version_id
from orchestration.models import Event, UsageLedger, WorkflowInstance
from orchestration.resources.config import resource_config
from orchestration.resources.quotas import quota_hold, quotas_release
from orchestration.resources.selectors import resource_usage
from registry.changes import registry_changed
from tests.support.helpers import apply_yaml, start, step

from .inprocess import claim_step, finish, run_ready, run_to_rest, spend

pytestmark = pytest.mark.django_db

# DAC_TOKEN_QUOTA_PER_HOUR = 1000, data gets 50%: 500 tokens an hour.
HELD = {"limit": "api_tokens", "type": "data", "share": 500}


@pytest.fixture
def quota(settings):
    settings.DAC_TOKEN_QUOTA_PER_HOUR = 1000
    apply_yaml(yaml.safe_dump({"name": "quota-co", "coordination": {"resources": {"api_tokens": {"data": "50%"}}},
                               "workflows": [
        {"id": "hungry", "type": "data", "steps": [
            spend("a", 300, 300), {"id": "x", "action": "noop"}, spend("b", 300, 300, depends_on=["a"]),
            {"id": "y", "action": "noop", "depends_on": ["x"]}, {"id": "c", "action": "noop", "depends_on": ["b"]}]},
        {"id": "sip", "type": "data", "steps": [spend("a", 1, 1)]},
        {"id": "calm", "type": "support", "steps": [spend("a", 1000, 1000)]},
    ]}))
    registry_changed()  # this process reads the shares just applied
    yield
    registry_changed()


def fresh(instance):
    return WorkflowInstance.objects.get(id=instance.id)


def hour_moves_on():
    UsageLedger.objects.update(minute=F("minute") - timezone.timedelta(minutes=61))


def quota_notices(instance):
    return list(Escalation.objects.filter(instance_id=instance.id, rule="api_tokens"))


def test_a_type_over_its_share_has_its_next_steps_queued_until_the_hour_frees_tokens(quota):
    instance = start("hungry")
    running = claim_step(instance, "x")  # on a worker while `a` spends the type's share
    finish(claim_step(instance, "a"))
    instance = fresh(instance)
    assert (instance.status, instance.queued_reason) == ("queued", {**HELD, "used": 600})
    assert selectors.instance_as_dict(selectors.instance_get(instance.id))["queue"] == {**HELD, "used": 600}
    assert step(instance, "b").status == "pending"
    (notice,) = quota_notices(instance)
    assert (notice.level, notice.gate, notice.type, notice.status) == ("review", "none", "token_quota", "pending")

    finish(running)  # a running step finishes; its successor is held like the others
    assert (step(instance, "x").status, step(instance, "y").status, fresh(instance).status) == (
        "completed", "pending", "queued")
    assert quotas_release() == 0  # still over

    hour_moves_on()
    assert quotas_release() == 1
    instance = fresh(instance)
    assert (instance.status, instance.queued_reason) == ("running", None)
    assert (step(instance, "b").status, step(instance, "y").status) == ("ready", "ready")

    finish(claim_step(instance, "b"))  # spends the share again: `y` (ready) and `c` wait
    assert (fresh(instance).status, step(instance, "y").status, step(instance, "c").status) == (
        "queued", "ready", "pending")
    assert claim_step(instance, "y") is None
    hour_moves_on()
    assert quotas_release() == 1
    assert run_to_rest(instance).status == "completed"
    assert len(quota_notices(instance)) == 1  # once per instance, however often it is held
    started = Event.objects.filter(source_instance_id=instance.id, event_type="workflow.started")
    assert started.count() == 1  # a release is no second start


def test_a_new_instance_of_a_type_over_its_share_starts_queued_and_other_types_run(quota):
    UsageLedger.objects.create(minute=timezone.now(), workflow="elsewhere", workflow_type="data", tokens_in=500)
    held, other = start("sip"), start("calm")
    assert (fresh(held).status, fresh(held).queued_reason, step(held, "a").status) == (
        "queued", {**HELD, "used": 500}, "ready")
    assert run_ready(held) == []  # its ready step is refused while it is queued
    assert run_to_rest(other).status == "completed"  # support has no share: no quota
    hour_moves_on()
    assert quotas_release() == 1
    assert run_to_rest(held).status == "completed"


def test_resource_usage_shows_pools_buckets_and_token_use_per_type(quota, settings):
    settings.DAC_MAX_RUNNING = 1
    start("calm")
    waiting = start("calm")  # over DAC_MAX_RUNNING: queued for the global slot
    assert fresh(waiting).status == "queued"
    UsageLedger.objects.create(minute=timezone.now(), workflow="hungry", workflow_type="data", tokens_in=120,
                               tokens_out=30)
    UsageLedger.objects.create(minute=timezone.now(), workflow="calm", workflow_type="support", tokens_in=7)
    usage = resource_usage()
    assert set(usage) == {"pools", "buckets", "tokens"}
    assert usage["pools"] == [{"key": "global", "limit": 1, "running": 1, "queued": 1}]
    assert isinstance(usage["buckets"], list)
    assert all(set(b) == {"name", "limit", "per", "tokens"} for b in usage["buckets"])
    assert usage["tokens"] == [{"type": "data", "used_last_hour": 150, "share": 500},
                               {"type": "support", "used_last_hour": 7, "share": None}]


def test_no_quota_and_no_share_cost_no_query(quota, settings, django_assert_num_queries):
    instance = start("calm")
    plan = plan_for_version_id(instance.version_id)
    resource_config()  # the shares are read once per change, not per step
    with django_assert_num_queries(0):
        assert quota_hold(instance, plan) is False  # support has no share
    settings.DAC_TOKEN_QUOTA_PER_HOUR = 0
    instance = fresh(instance)
    with django_assert_num_queries(0):
        assert quota_hold(instance, plan) is False
