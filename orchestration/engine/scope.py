"""What templates see (DESIGN §2), and masking of secret values before anything is stored."""
import functools
import os

from django.conf import settings

from orchestration.templating import Secrets

MASK = "***"


def secret_value(name):
    """`secrets.NAME` comes from the DAC_SECRET_<NAME> environment variable; never stored."""
    return os.environ.get(f"{settings.DAC_SECRETS_ENV_PREFIX}{name}")


@functools.lru_cache(maxsize=1)
def configured_secret_values():
    """Every configured secret value (read once per process: the environment is fixed)."""
    prefix = settings.DAC_SECRETS_ENV_PREFIX
    return tuple(v for k, v in os.environ.items() if k.startswith(prefix) and len(v) >= 3)


def build_scope(*, instance, workflow, runs, item=None, index=None):
    """`runs`: {step_id: (status, output, decision)} of the instance's steps."""
    from orchestration.context.services import SharedView

    steps = {sid: {"status": status, "output": output, "decision": decision}
             for sid, (status, output, decision) in runs.items()}
    scope = {
        "context": instance.context or {},
        "steps": steps,
        "nodes": steps,
        "instance": {"id": str(instance.id), "workflow": workflow, "priority": instance.priority,
                     "parent": str(instance.parent_id) if instance.parent_id else None},
        "trigger": instance.trigger or {"type": "manual"},
        "shared": SharedView(),
        "secrets": Secrets(secret_value),
    }
    if index is not None:
        scope["item"] = item
        scope["index"] = index
    return scope


def mask(value, secrets=()):
    """Replace every known secret value found in `value` (recursively) with ***."""
    values = sorted({*secrets, *configured_secret_values()}, key=len, reverse=True)
    if not values:
        return value
    return _mask(value, values)


def _mask(value, values):
    if isinstance(value, str):
        for secret in values:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: _mask(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, values) for v in value]
    return value


def run_outputs(instance_id):
    """{step_id: (status, output, decision)} of an instance's steps: what `steps.*` templates read."""
    from orchestration.models import StepRun

    rows = StepRun.objects.filter(instance_id=instance_id).values_list("step_id", "status", "output", "decision")
    return {step_id: (status, output, decision) for step_id, status, output, decision in rows}
