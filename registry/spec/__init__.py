"""Reading, normalising and validating workflow and blueprint documents (pure: no database).

`compile_text` / `compile_file` return a `Compiled` document, or raise `SpecInvalid` listing
every error with its file, step and field.
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dacproject.nul import UNSTORABLE, unstorable_path
from registry import progress

from .agents import normalize_agent
from .checker import Checker
from .errors import ErrorSink, SpecError, SpecInvalid
from .governance import normalize_escalations, normalize_governance
from .normalize import normalize_workflow
from .resources import normalize_rate_limits, normalize_resources
from .triggers import normalize_auto_spawn
from .validate import validate_workflow

__all__ = ("Compiled", "SpecError", "SpecInvalid", "compile_file", "compile_text", "spec_sha256")

MAX_STEPS = 500
BLUEPRINT_FIELDS = {"name", "description", "agents", "workflows", "coordination", "governance"}


@dataclass
class WorkflowDoc:
    spec: dict
    source: str
    file: str


@dataclass
class Compiled:
    kind: str  # "workflow" | "blueprint"
    workflows: list = field(default_factory=list)
    agents: list = field(default_factory=list)
    blueprint: dict | None = None
    warnings: list = field(default_factory=list)


def spec_sha256(spec):
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_text(text, file, fmt=None):
    """YAML (safe loader) or JSON text -> Python data; a syntax error names its line."""
    try:
        if fmt == "json" or (fmt is None and str(file).endswith(".json")):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise SpecInvalid([SpecError(file, None, None, message)]) from exc
    except RecursionError:
        raise SpecInvalid([SpecError(file, None, None, "the document is nested too deeply")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        # PyYAML often notices a fault lines after its cause: also name where the enclosing node began.
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark and (not mark or context_mark.line != mark.line):
            problem += f" ({context} that starts at line {context_mark.line + 1})"
        raise SpecInvalid([SpecError(file, None, None, f"invalid YAML{where}: {problem}")]) from exc


def compile_file(path, *, known_workflows=frozenset(), known_agents=None, known_webhooks=None, known_buckets=()):
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecInvalid([SpecError(str(path), None, None, f"cannot read file: {exc.strerror}")]) from exc
    return compile_text(text, str(path), base_dir=path.parent, known_workflows=known_workflows,
                        known_agents=known_agents, known_webhooks=known_webhooks, known_buckets=known_buckets)


def compile_text(text, file="<input>", *, fmt=None, base_dir=None, known_workflows=frozenset(), known_agents=None,
                 known_webhooks=None, known_buckets=()):
    """`known_webhooks`: {path: workflow id} of registered webhook triggers (a path has one owner);
    `known_buckets`: the rate-limit buckets in force as layers (origin, {name: limit}), weakest
    first, origin the name of the blueprint that defines them or None for the environment."""
    raw = parse_text(text, file, fmt)
    where = unstorable_path(raw)
    if where:
        raise SpecInvalid([SpecError(file, None, where, UNSTORABLE)])
    if isinstance(raw, dict) and "workflows" in raw:
        return _compile_blueprint(raw, text, file, base_dir, set(known_workflows), dict(known_agents or {}),
                                  dict(known_webhooks or {}), known_buckets)
    sink = ErrorSink(file)
    spec = normalize_workflow(raw, sink)
    if spec is not None and not sink.errors:
        _validate(spec, sink, set(known_workflows) | {spec["id"]}, known_agents or {}, bucket_limits(known_buckets))
        _check_webhook_paths(spec, sink, dict(known_webhooks or {}))
    _raise_if_errors([sink])
    return Compiled("workflow", workflows=[WorkflowDoc(spec, text, file)], warnings=sink.warnings)


def _check_webhook_paths(spec, sink, owners):
    """A webhook path belongs to one workflow; `owners` ({path: workflow}) grows as specs claim paths."""
    for i, trigger in enumerate(spec["triggers"]):
        path = trigger.get("path") if trigger["type"] == "webhook" else None
        if not path:
            continue
        owner = owners.get(path)
        if owner is not None and owner != spec["id"]:
            sink.error(f"webhook path '{path}' is already used by workflow '{owner}'", field=f"triggers[{i}].path")
        elif any(t.get("path") == path for t in spec["triggers"][:i] if t["type"] == "webhook"):
            sink.error(f"webhook path '{path}' appears twice in this workflow", field=f"triggers[{i}].path")
        owners[path] = spec["id"]


def bucket_limits(layers, *, blueprint=None, own=None):
    """{name: limit} of the buckets in force once `blueprint` (being compiled) is applied with its
    `own` buckets: they replace those of its applied version, and are applied last."""
    limits = {}
    for origin, buckets in layers:
        if origin is None or origin != blueprint:
            limits.update(buckets)
    return {**limits, **{name: b["limit"] for name, b in (own or {}).items()}}


def _validate(spec, sink, known_workflows, known_agents, known_buckets):
    if spec["steps"] and len(spec["steps"]) > MAX_STEPS:
        sink.error(f"has {len(spec['steps'])} steps; at most {MAX_STEPS} are allowed", field="steps")
        return
    validate_workflow(spec, sink, known_workflows=known_workflows,
                      known_agents={name: a["capabilities"] for name, a in known_agents.items()},
                      known_buckets=known_buckets)


def _compile_blueprint(raw, text, file, base_dir, known_workflows, known_agents, known_webhooks, known_buckets):
    sink = ErrorSink(file)
    c = Checker(sink, raw)
    c.unknown_fields(BLUEPRINT_FIELDS)
    name = c.get("name", str)
    if not name:
        c.error("name", "is required for a blueprint")
    agents, agent_index = [], {}
    for i, raw_agent in enumerate(c.get("agents", list, default=[])):
        agent = normalize_agent(raw_agent, sink, f"agents[{i}]")
        if agent is None:
            continue
        if agent["name"] in agent_index:
            sink.error(f"agent '{agent['name']}' is already defined at agents[{agent_index[agent['name']]}]",
                       field=f"agents[{i}].name")
            continue
        agent_index[agent["name"]] = i
        agents.append(agent)
    known_agents = {**known_agents, **{a["name"]: a for a in agents}}
    entries = c.get("workflows", list, default=[])
    sinks = [sink]
    docs = []
    for i, entry in enumerate(entries):
        progress.report("reading", i, len(entries))
        doc = _blueprint_entry(entry, i, file, base_dir, sink)
        if doc is None:
            continue
        label = doc.raw.get("id") or doc.raw.get("name") if isinstance(doc.raw, dict) else None
        entry_sink = ErrorSink(doc.file, workflow=label if isinstance(label, str) else f"workflows[{i}]")
        sinks.append(entry_sink)
        spec = normalize_workflow(doc.raw, entry_sink)
        if spec is not None:
            docs.append((WorkflowDoc(spec, doc.source, doc.file), entry_sink))
    seen = {}
    for doc, entry_sink in docs:
        if doc.spec["id"] in seen:
            entry_sink.error(f"workflow id '{doc.spec['id']}' appears twice in the blueprint", field="id")
        seen[doc.spec["id"]] = doc
    known_workflows |= set(seen)
    # Paths of workflows this blueprint redefines are theirs to keep or give up.
    owners = {path: wf for path, wf in known_webhooks.items() if wf not in seen}
    coordination = c.get("coordination", dict, default={})
    rate_limits = normalize_rate_limits(sink, coordination)  # before the workflows: their steps may use them
    buckets = bucket_limits(known_buckets, blueprint=name, own=rate_limits)
    for i, (doc, entry_sink) in enumerate(docs):
        progress.report("validating", i, len(docs))
        if not entry_sink.errors:
            _validate(doc.spec, entry_sink, known_workflows, known_agents, buckets)
            _check_webhook_paths(doc.spec, entry_sink, owners)
    auto_spawn = normalize_auto_spawn(sink, coordination, known_workflows)
    escalation = normalize_escalations(sink, coordination)
    resources = normalize_resources(sink, coordination)
    governance = normalize_governance(sink, raw.get("governance"))
    _raise_if_errors(sinks)
    blueprint = {
        "name": name,
        "description": c.get("description", str, default=""),
        "coordination": {**coordination, "auto_spawn": auto_spawn, "escalation": escalation,
                         "rate_limits": rate_limits, "resources": resources},
        "governance": governance,
        "workflows": [doc.spec["id"] for doc, _ in docs],
    }
    return Compiled("blueprint", workflows=[d for d, _ in docs], agents=agents, blueprint=blueprint,
                    warnings=[w for s in sinks for w in s.warnings])


@dataclass
class _Entry:
    raw: object
    source: str
    file: str


def _blueprint_entry(entry, index, file, base_dir, sink):
    if isinstance(entry, dict) and "file" in entry:
        rel = entry["file"]
        if not isinstance(rel, str):
            sink.error("must be a path", field=f"workflows[{index}].file")
            return None
        path = Path(base_dir or ".") / rel
        try:
            text = path.read_text()
        except OSError as exc:
            sink.error(f"cannot read '{path}': {exc.strerror}", field=f"workflows[{index}].file")
            return None
        try:
            raw = parse_text(text, str(path))
        except SpecInvalid as exc:
            sink.errors.extend(exc.errors)
            return None
        if isinstance(raw, dict) and entry.get("id") and raw.get("id", entry["id"]) != entry["id"]:
            sink.error(f"names '{entry['id']}' but the file defines '{raw.get('id')}'", field=f"workflows[{index}].id")
            return None
        if isinstance(raw, dict) and entry.get("id"):
            raw = {**raw, "id": entry["id"]}
        return _Entry(raw, text, str(path))
    return _Entry(entry, yaml.safe_dump(entry, sort_keys=False) if isinstance(entry, dict) else "", file)


def _raise_if_errors(sinks):
    errors = [e for s in sinks for e in s.errors]
    if errors:
        raise SpecInvalid(errors, [w for s in sinks for w in s.warnings])
