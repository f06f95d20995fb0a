"""`context.set` and `context.get` (DESIGN §5, §6.5): shared context from inside a workflow."""
from orchestration.actions import action
from orchestration.actions.registry import ActionError
from orchestration.engine.errors import EngineError

from . import services


@action("context.set", description="Write a shared context key; with if_version, only at that version.")
def context_set(ctx, *, key, value=None, scope=services.GLOBAL, ttl_seconds=None, if_version=None):
    try:
        entry = services.context_set(scope=scope, key=key, value=value, ttl_seconds=ttl_seconds, if_version=if_version,
                                     source_workflow=ctx.workflow, source_instance=ctx.instance_id)
    except EngineError as exc:  # a version conflict fails the attempt; `retry` makes a CAS loop
        raise ActionError(exc.message) from None
    return {"key": entry.key, "scope": entry.scope, "version": entry.version}


@action("context.get", description="Read a shared context key; `default` when it is absent or expired.")
def context_get(ctx, *, key, scope=services.GLOBAL, default=None):
    try:
        entry = services.context_get(scope=scope, key=key)
    except EngineError as exc:
        raise ActionError(exc.message) from None
    return default if entry is None else entry.value
