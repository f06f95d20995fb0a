"""Helpers shared by tests: registering YAML, starting instances, polling with a deadline."""
import time

import yaml

from orchestration import engine, selectors
from orchestration.models import StepRun, WorkflowInstance
from registry import services as registry


class Timeout(AssertionError):
    pass


def wait_until(predicate, *, timeout=30.0, interval=0.05, message="condition"):
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def apply_yaml(text, *, actor="test"):
    compiled = registry.compile_source(text, file="test.yaml")
    return registry.definitions_apply(compiled=compiled, actor=actor)


def apply_spec(spec, *, actor="test"):
    return apply_yaml(yaml.safe_dump(spec, sort_keys=False), actor=actor)


def start(workflow, context=None, *, actor="test"):
    return engine.instance_start(workflow=workflow, context=context or {}, actor=actor)


def finished(instance, *, timeout=30.0):
    """Wait for an instance to reach a terminal status; returns the fresh instance."""
    wait_until(lambda: selectors.instance_is_finished(instance.id), timeout=timeout,
               message=f"instance {instance.id} to finish")
    return WorkflowInstance.objects.get(id=instance.id)


def step(instance, step_id):
    return StepRun.objects.get(instance_id=instance.id, step_id=step_id)


def step_reaches(instance, step_id, status, *, timeout=30.0):
    return wait_until(lambda: StepRun.objects.filter(instance_id=instance.id, step_id=step_id, status=status).first(),
                      timeout=timeout, message=f"step {step_id} to be {status}")


def queue_length(queue):
    """Messages waiting in a Redis-backed Celery queue, over all its priority lists."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    return sum(client.llen(key) for key in client.scan_iter(match=f"{queue}*") if client.type(key) == b"list")
