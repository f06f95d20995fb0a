"""The runtime view of a workflow version: steps, edges and orders (pure, cached per version)."""
from dataclasses import dataclass

from registry.spec import graph


@dataclass(frozen=True)
class Plan:
    version_id: int
    spec: dict
    steps: dict  # id -> canonical step
    deps: dict  # id -> tuple of dependency ids
    order: tuple  # topological order
    sinks: tuple

    @property
    def step_ids(self):
        return tuple(self.steps)

    def downstream(self, step_ids):
        return graph.descendants(self.deps, step_ids)


def topological_order(deps):
    order, seen = [], set()
    pending = list(deps)
    while pending:
        progressed = []
        for node in pending:
            if all(d in seen for d in deps[node]):
                order.append(node)
                seen.add(node)
            else:
                progressed.append(node)
        if len(progressed) == len(pending):
            raise ValueError(f"cycle among {progressed}")
        pending = progressed
    return tuple(order)


def build_plan(version_id, spec):
    steps = {s["id"]: s for s in spec["steps"] or []}
    deps = {sid: tuple(s["depends_on"]) for sid, s in steps.items()}
    return Plan(version_id, spec, steps, deps, topological_order(deps), tuple(graph.sinks(deps)))


_CACHE = {}
_CACHE_SIZE = 512


def plan_for(version):
    """The Plan of a WorkflowVersion; versions are immutable, so a cached plan never goes stale."""
    plan = _CACHE.get(version.id)
    if plan is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        plan = _CACHE[version.id] = build_plan(version.id, version.spec)
    return plan


def plan_for_version_id(version_id):
    """The Plan of a version by id, loading the version only when it is not cached."""
    plan = _CACHE.get(version_id)
    if plan is None:
        from registry.models import WorkflowVersion

        plan = plan_for(WorkflowVersion.objects.only("id", "spec").get(id=version_id))
    return plan
