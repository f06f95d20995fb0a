"""Shared context (DESIGN §6.5) from workflows: context.set/get actions, compare-and-set, `shared.<key>`
in templates, `context.changed` as a trigger, TTL, and reads served from Redis."""
import pytest

from orchestration.context import services
from orchestration.context.models import SharedValue
from orchestration.models import WorkflowInstance
from tests.support.helpers import apply_spec, apply_yaml, finished, start, step, wait_until

pytestmark = pytest.mark.integration


def test_steps_write_and_read_shared_context_and_templates_see_shared_keys(live):
    services.context_set(scope="global", key="release", value={"version": "2.1.0"}, actor="test")
    apply_spec({"id": "ctx-flow", "steps": [
        {"id": "put", "action": "context.set",
         "with": {"key": "ctx.note", "value": {"by": "{{ instance.id }}"}, "scope": "workflow_type:support"}},
        {"id": "get", "action": "context.get", "depends_on": ["put"],
         "with": {"key": "ctx.note", "scope": "workflow_type:support"}},
        {"id": "missing", "action": "context.get", "with": {"key": "ctx.none", "default": "fallback"}},
        {"id": "use", "action": "echo", "with": {"release": "{{ shared.release.version }}"}},
    ]})
    instance = finished(start("ctx-flow"))
    assert instance.status == "completed", instance.error
    assert step(instance, "put").output == {"key": "ctx.note", "scope": "workflow_type:support", "version": 1}
    assert step(instance, "get").output == {"by": str(instance.id)}
    assert step(instance, "missing").output == "fallback"
    assert step(instance, "use").output == {"release": "2.1.0"}
    row = SharedValue.objects.get(key="ctx.note")
    assert (row.source_workflow, str(row.source_instance)) == ("ctx-flow", str(instance.id))


def test_compare_and_set_lets_one_of_two_instances_take_a_lock(live):
    apply_spec({"id": "ctx-lock", "steps": [
        {"id": "take", "action": "context.set",
         "with": {"key": "deploy.lock", "value": "{{ context.who }}", "if_version": 0}}]})
    first, second = (finished(start("ctx-lock", {"who": who})) for who in ("first", "second"))
    assert (first.status, second.status) == ("completed", "failed")
    assert "is at version 1, not version 0" in step(second, "take").error["message"]
    assert services.context_get(scope="global", key="deploy.lock").value == "first"


def test_a_context_change_is_an_event_that_can_start_a_watcher(live):
    apply_yaml("""
id: ctx-watcher
triggers: [{type: event, event: context.changed, filters: {key: "deploy.*", scope: global}}]
steps: [{id: saw, action: echo, with: {key: "{{ context.key }}", version: "{{ context.version }}"}}]
""")
    services.context_set(scope="global", key="other.thing", value=1, actor="test")
    services.context_set(scope="global", key="deploy.target", value="eu", actor="test")
    watcher = wait_until(lambda: WorkflowInstance.objects.filter(definition__key="ctx-watcher").first(),
                         message="the watcher to start")
    assert finished(watcher).result == {"saw": {"key": "deploy.target", "version": 1}}
    assert WorkflowInstance.objects.filter(definition__key="ctx-watcher").count() == 1


def test_reads_come_from_redis_and_expired_keys_are_absent(live):
    services.context_set(scope="global", key="cached", value="from-postgres-and-redis", actor="test")
    assert services.context_get(scope="global", key="cached").value == "from-postgres-and-redis"
    # Changed behind the service's back: the cached entry is what is served...
    SharedValue.objects.filter(key="cached").update(value="edited-in-the-table")
    assert services.context_get(scope="global", key="cached").value == "from-postgres-and-redis"
    services.cache_clear()  # ...until the cache is gone; PostgreSQL is the truth
    assert services.context_get(scope="global", key="cached").value == "edited-in-the-table"
    services.context_set(scope="global", key="short", value=1, ttl_seconds=1, actor="test")
    assert services.context_get(scope="global", key="short").value == 1
    wait_until(lambda: services.context_get(scope="global", key="short") is None, timeout=10,
               message="the key to expire")
    assert services.context_set(scope="global", key="short", value=2, actor="test").version == 2
