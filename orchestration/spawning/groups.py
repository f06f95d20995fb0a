"""Ad-hoc groups and pipelines of children (`POST /api/v1/instances/spawn/`, DESIGN §6.3): a
parent workflow of `spawn` steps is built for the request, registered like any definition
(content-addressed, so the same shape reuses one definition), and started.

`parallel`: one `spawn` step per child, all at once; the result is `{"results": [...]}` in the
order given. `pipeline`: each child waits for the one before and receives its result as
`input` in its context; the result is `{"result": <last>, "results": [...]}`. Each child's
context is the one given for it (the parent keeps the request's `context` and the children
list as its own context, where the steps read them, so client values are never templates).
"""
import hashlib
import json

from django.db import transaction

from orchestration import engine
from registry import selectors as registry_selectors
from registry import services as registry

MODES = ("parallel", "pipeline")
MAX_CHILDREN = 100


def _check(mode, children, context):
    if mode not in MODES:
        raise engine.InvalidRequest(f"mode must be 'parallel' or 'pipeline', got {mode!r}", details={"field": "mode"})
    if not isinstance(context, dict):
        raise engine.InvalidRequest("context must be a JSON object", details={"field": "context"})
    if not isinstance(children, list) or not 1 <= len(children) <= MAX_CHILDREN:
        raise engine.InvalidRequest(f"children must be a list of 1 to {MAX_CHILDREN} {{workflow, context}} objects",
                                    details={"field": "children"})
    normalized = []
    for i, child in enumerate(children):
        where = f"children[{i}]"
        if not isinstance(child, dict) or set(child) - {"workflow", "context"}:
            raise engine.InvalidRequest(f"{where} must be an object with 'workflow' and an optional 'context'",
                                        details={"field": where})
        workflow, child_context = child.get("workflow"), child.get("context", {})
        if not isinstance(workflow, str) or not workflow:
            raise engine.InvalidRequest(f"{where}.workflow is required", details={"field": f"{where}.workflow"})
        definition = registry_selectors.definition_get(workflow)
        if definition is None:
            raise engine.NotFound(f"{where}.workflow: workflow '{workflow}' is not registered",
                                  details={"field": f"{where}.workflow"})
        if not registry_selectors.definition_is_startable(definition):
            raise engine.InvalidRequest(f"{where}.workflow: workflow '{workflow}' has no steps and cannot be started",
                                        details={"field": f"{where}.workflow"})
        if not isinstance(child_context, dict):
            raise engine.InvalidRequest(f"{where}.context must be a JSON object", details={"field": f"{where}.context"})
        normalized.append({"workflow": workflow, "context": child_context})
    return normalized


def group_spec(mode, workflows):
    """The parent's definition for a mode and the children's workflows (pure)."""
    digest = hashlib.sha256(json.dumps([mode, workflows]).encode()).hexdigest()[:12]
    steps = []
    for i, workflow in enumerate(workflows):
        context = f"{{{{ context.children[{i}].context }}}}"
        step = {"id": f"child_{i}", "spawn": {"workflow": workflow, "context": context}}
        if mode == "pipeline" and i:
            step["spawn"]["context"] = (f"{{{{ dict(context.children[{i}].context, "
                                        f"input=steps.child_{i - 1}.output) }}}}")
            step["depends_on"] = [f"child_{i - 1}"]
        steps.append(step)
    results = [f"{{{{ steps.child_{i}.output }}}}" for i in range(len(workflows))]
    result = {"results": results} if mode == "parallel" else {"result": results[-1], "results": results}
    return {"id": f"spawn-{mode}-{digest}", "name": f"{mode} of {', '.join(workflows)}"[:200],
            "description": f"Ad-hoc {mode} built by POST /api/v1/instances/spawn/", "tags": ["adhoc", "spawn"],
            "steps": steps, "result": result}


@transaction.atomic
def spawn_group_start(*, mode, children, actor, context=None, priority=None):
    """Register (or reuse) the parent definition and start it; returns the parent instance."""
    context = {} if context is None else context
    children = _check(mode, children, context)
    spec = group_spec(mode, [c["workflow"] for c in children])
    compiled = registry.compile_source(json.dumps(spec), file="<instances/spawn>", fmt="json")
    registry.definitions_apply(compiled=compiled, actor=actor)
    return engine.instance_start(workflow=spec["id"], context={**context, "children": children}, actor=actor,
                                 priority=priority)
