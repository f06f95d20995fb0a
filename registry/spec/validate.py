"""Semantic checks of a canonical workflow spec: the DAG, references and templates."""
import re

import jinja2
import jsonschema

from orchestration import templating
from orchestration.actions import registry as actions

from . import graph


def validate_workflow(spec, sink, *, known_workflows=frozenset(), known_agents=None, known_buckets=None):
    """Record every fault of `spec` in `sink`. `known_agents`: {name: {capability: {...}}};
    `known_buckets`: {name: limit} of the rate-limit buckets a step's `rate_limit` may name."""
    steps = spec["steps"]
    if steps is None:
        sink.warn("has no steps: it is registered and listed but cannot be started", field="steps")
        return
    if not steps:
        sink.error("must list at least one step", field="steps")
        return
    ids = [s["id"] for s in steps]
    by_id = {}
    for step in steps:
        if step["id"] in by_id:
            sink.error(f"duplicate step id '{step['id']}'", step=step["id"], field="id")
        by_id[step["id"]] = step
    for step in steps:
        for dep in step["depends_on"]:
            if dep not in by_id:
                sink.error(f"depends on unknown step '{dep}'", step=step["id"], field="depends_on")
            elif dep == step["id"]:
                sink.error("a step cannot depend on itself", step=step["id"], field="depends_on")
    # Unknown and self dependencies are reported above; leave them out of the graph.
    deps = {s["id"]: [d for d in s["depends_on"] if d in by_id and d != s["id"]] for s in steps}
    cycle = graph.find_cycle(deps)
    if cycle:
        sink.error(f"dependency cycle: {' -> '.join(cycle)}", step=cycle[0], field="depends_on")
        return  # ancestry is undefined on a cyclic graph
    ancestors = graph.ancestors(deps)
    for step in steps:
        _check_step(sink, step, ancestors[step["id"]], tuple(ids), known_workflows, known_agents)
        _check_rate_limit(sink, step, known_buckets or {})
    if spec["result"] is not None:
        _check_templates(sink, spec["result"], None, "result", set(ids), tuple(ids), foreach=False)
    if (spec.get("concurrency") or {}).get("key"):  # rendered at start: no step has run yet
        _check_templates(sink, spec["concurrency"]["key"], None, "concurrency.key", set(), tuple(ids),
                         foreach=False, stored=True)


def _check_step(sink, step, ancestors, ids, known_workflows, known_agents):
    sid = step["id"]
    if step["agent"]:
        _check_agent(sink, step, known_agents)
    elif step["action"] and not actions.is_known(step["action"]):
        sink.error(f"unknown action '{step['action']}'", step=sid, field="action")
    if step["compensate"] and step["compensate"]["action"] and not actions.is_known(step["compensate"]["action"]):
        sink.error(f"unknown action '{step['compensate']['action']}'", step=sid, field="compensate.action")
    spawn = step["spawn"]
    if spawn and spawn["workflow"] and spawn["workflow"] not in known_workflows:
        sink.error(f"unknown workflow '{spawn['workflow']}'", step=sid, field="spawn.workflow")
    if step["output_schema"] is not None:
        try:
            jsonschema.validators.validator_for(step["output_schema"]).check_schema(step["output_schema"])
        except jsonschema.SchemaError as exc:
            sink.error(f"is not a valid JSON Schema: {exc.message}", step=sid, field="output_schema")
    foreach = step["foreach"] is not None
    if step["join"] == "any" and len(step["depends_on"]) < 2:
        sink.warn("join: any has no effect with fewer than two dependencies", step=sid, field="join")
    for field, value in (("with", step["with"]), ("when", step["when"]), ("foreach", step["foreach"]),
                         ("spawn.context", (spawn or {}).get("context")),
                         ("wait_for.match", (step["wait_for"] or {}).get("match")),
                         ("wait_for.correlation_id", (step["wait_for"] or {}).get("correlation_id"))):
        if value is not None:
            item_fields = ("with", "spawn.context")
            # A gated step may read its own approval: `steps.<id>.decision`.
            allowed = ancestors | {sid} if step["approval"] and field == "with" else ancestors
            _check_templates(sink, value, sid, field, allowed, ids, foreach=foreach and field in item_fields,
                             stored=field in STORED_FIELDS)
    if step["compensate"]:
        _check_templates(sink, step["compensate"]["with"], sid, "compensate.with", ancestors | {sid}, ids,
                         foreach=False)
    for i, event in enumerate(step["emit"]):
        _check_templates(sink, event["payload"], sid, f"emit[{i}].payload", ancestors | {sid}, ids, foreach=False)


def _check_rate_limit(sink, step, known_buckets):
    limit = step.get("rate_limit")
    if not limit or not limit["key"]:
        return
    sid, key = step["id"], limit["key"]
    if step["spawn"] or step["wait_for"]:
        sink.error("only a step that runs an action takes rate-limit tokens", step=sid, field="rate_limit")
    elif key not in known_buckets:
        known = ", ".join(sorted(known_buckets)) or "none"
        sink.error(f"unknown rate-limit bucket '{key}' (known: {known}); define it in a blueprint's "
                   "coordination.rate_limits or in DAC_RATE_LIMITS", step=sid, field="rate_limit.key")
    elif limit["cost"] > known_buckets[key]:
        sink.error(f"cost {limit['cost']} is more than bucket '{key}' ever holds (limit {known_buckets[key]}): "
                   "the step could never run", step=sid, field="rate_limit.cost")


def _check_agent(sink, step, known_agents):
    sid = step["id"]
    if known_agents is None or step["agent"] not in known_agents:
        sink.error(f"unknown agent '{step['agent']}' (register it, e.g. in a blueprint's 'agents')",
                   step=sid, field="agent")
        return
    capabilities = known_agents[step["agent"]]
    if capabilities and step["action"] not in capabilities:
        sink.error(f"agent '{step['agent']}' has no capability '{step['action']}'", step=sid, field="action")
        return
    explicit = (capabilities.get(step["action"]) or {}).get("action")
    target = explicit or f"{step['agent']}.{step['action']}"
    if not actions.is_known(target):
        # The seed-004 shape registers capabilities by name only, so a missing implementation is
        # reported here and fails the step when it runs; a named but unknown action is an error.
        report = sink.error if explicit else sink.warn
        report(f"capability '{step['action']}' of agent '{step['agent']}' runs unknown action '{target}' "
               f"(give the capability an 'action')", step=sid, field="action")


# `steps.<id>` where <id> has a '-': unless it is a known step id, Jinja would read it as a subtraction.
_HYPHENATED_REF = re.compile(r"(?<![\w.])(?:steps|nodes)\.([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)+)")


# What these render is stored as it is (a child's context, a parked wait), so no secret may flow in.
STORED_FIELDS = ("spawn.context", "wait_for.match", "wait_for.correlation_id")


def _check_templates(sink, value, sid, base_field, allowed_steps, ids, *, foreach, stored=False):
    for field, source in _strings(value, base_field):
        if not templating.is_template(source):
            continue
        odd = sorted({m for m in _HYPHENATED_REF.findall(source) if m not in ids})
        if odd:
            sink.error(f"template refers to unknown step '{odd[0]}'", step=sid, field=field)
            continue
        try:
            names, refs = templating.references(source, ids)
        except templating.TemplateError as exc:
            sink.error(str(exc), step=sid, field=field)
            continue
        except jinja2.TemplateError as exc:  # e.g. an unknown filter or test, found while analysing
            sink.error(f"template error: {exc.message}", step=sid, field=field)
            continue
        unknown = sorted(names - templating.NAMESPACES)
        if unknown:
            sink.error(f"template uses unknown name '{unknown[0]}' (known: {', '.join(sorted(templating.NAMESPACES))})",
                       step=sid, field=field)
        if not foreach and names & {"item", "index"}:
            sink.error("'item' and 'index' exist only in a foreach step's inputs", step=sid, field=field)
        if stored and "secrets" in names:
            sink.error("'secrets' cannot be used here: what this renders is stored (read secrets.NAME in the "
                       "step that needs it)", step=sid, field=field)
        for ref in sorted(refs):
            if ref not in ids:
                sink.error(f"template refers to unknown step '{ref}'", step=sid, field=field)
            elif ref not in allowed_steps:
                sink.error(f"template refers to step '{ref}', which is not an ancestor of this step "
                           f"(add it to depends_on)", step=sid, field=field)


def _strings(value, path):
    """(field path, string) for every string inside a JSON-like value, e.g. ('with.items[0]', '...')."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
