"""Registering definitions: idempotent re-apply, versioning, the seed files, JSON and `dac validate`."""
import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from governance.models import AuditEntry
from registry import selectors, services
from registry.models import Agent, Blueprint, DefinitionStatus, WorkflowDefinition, WorkflowVersion
from registry.spec import SpecInvalid
from tests.support.helpers import apply_spec, apply_yaml

from .conftest import row_counts

SEEDS = Path("/work/shared/seeds")
SEED_BLUEPRINT = SEEDS / "blueprint-software-company.yaml"
SEED_COMPLIANCE = SEEDS / "workflow-compliance-check-weekly.yaml"
SEED_SECURITY = SEEDS / "workflow-security-audit-on-pr.yaml"
SEED_BLUEPRINT_WORKFLOWS = [
    "product-ideation", "product-prioritization", "software-development", "code-review",
    "deployment-pipeline", "customer-support", "incident-response",
]

# The agents the two seed-004 workflows use, in the seed-004 §2.1 registration shape. Each
# capability names the action it runs (here the built-in `echo`): a capability without one runs
# the action `<agent>.<capability>`, which must be registered.
SEED004_AGENTS = """
name: seed-004-agents
description: agents for the seed-004 example workflows
agents:
  - name: compliance-checker
    type: LLM
    riskLevel: AUTO
    capabilities: [{name: auditProject, description: Check a project against standards, action: echo}]
  - name: report-generator
    type: SCRIPT
    riskLevel: AUTO
    capabilities: [{name: createPDF, action: echo}]
  - name: notifier
    type: API
    riskLevel: AUTO
    capabilities: [{name: sendEmail, action: echo}, {name: sendSlackAlert, action: echo}]
  - name: security-scanner
    type: LLM
    riskLevel: AUTO
    capabilities: [{name: scanRepository, action: echo}]
  - name: security-assessor
    type: LLM
    riskLevel: AUTO
    capabilities: [{name: evaluateRisk, action: echo}]
  - name: patcher
    type: LLM
    riskLevel: APPROVAL_REQUIRED
    capabilities: [{name: generateFixPR, action: echo}]
workflows: []
"""

REVIEW = """
id: code-review
name: Code review
type: development
triggers:
  - {type: manual}
  - {type: event, event: pr_created, filters: {repo: "acme/*"}}
steps:
  - id: fetch
    action: echo
    with: {url: "{{ context.pr_url }}"}
  - id: review
    action: echo
    with: {diff: "{{ steps.fetch.output }}"}
    depends_on: [fetch]
"""


def audit_count():
    return AuditEntry.objects.count()


# --- idempotence and versions -----------------------------------------------------------------

def test_first_apply_registers_version_1_with_one_audit_row(db):
    report = apply_yaml(REVIEW)
    assert report.workflows == [{"id": "code-review", "version": 1, "changed": True, "action": "created"}]
    definition = selectors.definition_get("code-review")
    assert definition.latest_version.number == 1
    assert definition.status == DefinitionStatus.ACTIVE
    assert definition.type == "development"
    assert definition.trigger_types == ["event", "manual"]
    assert [s["id"] for s in definition.latest_version.spec["steps"]] == ["fetch", "review"]
    entry = AuditEntry.objects.get()
    assert (entry.verb, entry.target_type, entry.target_id, entry.actor_name) == (
        "definitions.apply", "workflow", "code-review", "test")


def test_reapplying_an_identical_spec_is_a_no_op(db):
    apply_yaml(REVIEW)
    before = row_counts()
    first_version = selectors.definition_get("code-review").latest_version_id
    report = apply_yaml(REVIEW)
    assert report.workflows == [{"id": "code-review", "version": 1, "changed": False, "action": "unchanged"}]
    assert row_counts() == before
    assert selectors.definition_get("code-review").latest_version_id == first_version


def test_reapplying_with_only_comments_and_formatting_changed_is_a_no_op(db):
    apply_yaml(REVIEW)
    before = row_counts()
    reformatted = "# a comment\n" + yaml.safe_dump(yaml.safe_load(REVIEW), sort_keys=True, default_flow_style=False)
    assert reformatted != REVIEW
    assert apply_yaml(reformatted).workflows[0]["changed"] is False
    assert row_counts() == before


def test_a_changed_spec_becomes_the_next_version(db):
    apply_yaml(REVIEW)
    audits = audit_count()
    v1 = selectors.definition_get("code-review").latest_version
    changed = REVIEW.replace("action: echo\n    with: {diff", "action: noop\n    timeout_seconds: 30\n    with: {diff")
    assert changed != REVIEW
    report = apply_yaml(changed)
    assert report.workflows == [{"id": "code-review", "version": 2, "changed": True, "action": "updated"}]
    definition = selectors.definition_get("code-review")
    assert definition.latest_version.number == 2
    assert definition.latest_version_id != v1.id
    assert definition.latest_version.spec["steps"][1]["action"] == "noop"
    assert definition.latest_version.spec["steps"][1]["timeout_seconds"] == 30
    # version 1 is kept unchanged for the instances that run it
    v1.refresh_from_db()
    assert v1.spec["steps"][1]["action"] == "echo"
    assert list(definition.versions.values_list("number", flat=True)) == [2, 1]
    assert audit_count() == audits + 1
    # and going back to the first content is a new version again, not a rewind
    assert apply_yaml(REVIEW).workflows == [{"id": "code-review", "version": 3, "changed": True, "action": "updated"}]
    assert selectors.definition_get("code-review").latest_version.number == 3


def test_a_blueprint_reapplied_unchanged_writes_nothing_and_one_change_versions_only_that_workflow(db):
    blueprint = """
name: pair
workflows:
  - {id: one, steps: [{id: a, action: noop}]}
  - {id: two, steps: [{id: a, spawn: {workflow: one}}]}
"""
    report = apply_yaml(blueprint)
    assert [(w["id"], w["version"], w["action"]) for w in report.workflows] == [("one", 1, "created"),
                                                                                  ("two", 1, "created")]
    before = row_counts()
    assert [w["action"] for w in apply_yaml(blueprint).workflows] == ["unchanged", "unchanged"]
    assert row_counts() == before
    report = apply_yaml(blueprint.replace("{id: one, steps: [{id: a, action: noop}]}",
                                          "{id: one, steps: [{id: a, action: echo}]}"))
    assert [(w["id"], w["version"], w["action"]) for w in report.workflows] == [("one", 2, "updated"),
                                                                                  ("two", 1, "unchanged")]
    assert WorkflowDefinition.objects.get(key="one").blueprint.name == "pair"


# --- the seed blueprint -----------------------------------------------------------------------

def test_seed_blueprint_validates_verbatim_with_a_warning_per_stepless_workflow(db):
    compiled = services.compile_path(SEED_BLUEPRINT)
    assert compiled.kind == "blueprint"
    assert [d.spec["id"] for d in compiled.workflows] == SEED_BLUEPRINT_WORKFLOWS
    assert sorted(w.workflow for w in compiled.warnings) == sorted(SEED_BLUEPRINT_WORKFLOWS)
    for warning in compiled.warnings:
        assert (warning.file, warning.step, warning.field) == (str(SEED_BLUEPRINT), None, "steps")
        assert "has no steps" in warning.message
    assert compiled.blueprint["coordination"]["auto_spawn"][1] == {
        "on_event": "bug_report_created", "spawn": "software-development", "priority": 7,
        "filters": {}, "context": {}, "debounce": None}
    assert compiled.blueprint["governance"]["auto_approve"] == [
        "routine_bug_fixes", "documentation_updates", "test_additions"]


def test_seed_blueprint_registers_seven_listed_but_unstartable_workflows(db):
    report = services.definitions_apply(compiled=services.compile_path(SEED_BLUEPRINT), actor="test")
    assert len(report.warnings) == 7
    definitions = {d.key: d for d in WorkflowDefinition.objects.all()}
    assert sorted(definitions) == sorted(SEED_BLUEPRINT_WORKFLOWS)
    for definition in definitions.values():
        assert definition.status == DefinitionStatus.REGISTERED
        assert definition.latest_version.spec["steps"] is None
        assert definition.blueprint.name == "software-company-dac"
        assert not selectors.definition_is_startable(definition)
    assert definitions["customer-support"].type == "support"
    assert definitions["customer-support"].trigger_types == ["webhook"]
    assert definitions["product-ideation"].latest_version.spec["triggers"][0] == {
        "type": "scheduled", "cron": "0 9 * * 1", "timezone": "UTC", "context": {}, "overlap": "allow"}
    assert [d.key for d in selectors.definition_list(type="operations")] == [
        "deployment-pipeline", "incident-response", "product-ideation", "product-prioritization"]
    assert Blueprint.objects.get().spec["workflows"] == SEED_BLUEPRINT_WORKFLOWS
    before = row_counts()
    again = services.definitions_apply(compiled=services.compile_path(SEED_BLUEPRINT), actor="test")
    assert not any(w["changed"] for w in again.workflows)
    assert row_counts() == before


# --- the seed-004 workflows and agents --------------------------------------------------------

@pytest.mark.parametrize("path, missing", [
    (SEED_COMPLIANCE, [("scan-compliance", "compliance-checker"), ("generate-report", "report-generator"),
                       ("email-stakeholders", "notifier")]),
    (SEED_SECURITY, [("scan", "security-scanner"), ("assess", "security-assessor"),
                     ("notify-if-critical", "notifier"), ("create-fix-pr", "patcher")]),
], ids=["compliance", "security"])
def test_seed004_workflows_are_rejected_while_their_agents_are_unknown(db, path, missing):
    before = row_counts()
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(path)
    errors = info.value.errors
    assert [(e.step, e.field) for e in errors] == [(step, "agent") for step, _ in missing]
    for error, (_, agent) in zip(errors, missing, strict=True):
        assert error.file == str(path)
        assert f"unknown agent '{agent}'" in error.message
    assert row_counts() == before


def test_seed004_workflows_are_accepted_once_their_agents_are_registered(db):
    report = apply_yaml(SEED004_AGENTS)
    assert sorted(a["name"] for a in report.agents) == [
        "compliance-checker", "notifier", "patcher", "report-generator", "security-assessor", "security-scanner"]
    patcher = Agent.objects.get(name="patcher")
    assert (patcher.type, patcher.risk) == ("LLM", "APPROVAL_REQUIRED")
    assert set(Agent.objects.get(name="notifier").capabilities) == {"sendEmail", "sendSlackAlert"}

    compliance = services.compile_path(SEED_COMPLIANCE)
    security = services.compile_path(SEED_SECURITY)
    assert compliance.warnings == [] and security.warnings == []
    for compiled in (compliance, security):
        services.definitions_apply(compiled=compiled, actor="test")

    spec = selectors.definition_get("compliance-check-weekly").latest_version.spec
    assert spec["triggers"] == [{"type": "scheduled", "cron": "0 9 * * 1", "timezone": "UTC", "context": {},
                                 "overlap": "allow"}]
    report_step = spec["steps"][1]
    assert report_step["depends_on"] == ["scan-compliance"]
    assert report_step["with"]["score"] == "{{ nodes.scan-compliance.output.score }}"
    assert report_step["approval"] is False

    security_def = selectors.definition_get("security-audit-deploy")
    assert security_def.status == DefinitionStatus.ACTIVE
    steps = {s["id"]: s for s in security_def.latest_version.spec["steps"]}
    assert security_def.latest_version.spec["triggers"][0]["event"] == "graph.file.updated"
    assert steps["create-fix-pr"]["approval"]["min_approvals"] == 1
    assert steps["create-fix-pr"]["depends_on"] == ["assess"]


def test_hyphenated_step_references_are_checked_against_ancestry(db):
    apply_yaml(SEED004_AGENTS)
    seed = yaml.safe_load(SEED_COMPLIANCE.read_text())
    # the report step no longer depends on the scan: its hyphenated reference is now out of reach
    seed["nodes"][1]["dependsOn"] = []
    with pytest.raises(SpecInvalid) as info:
        services.compile_source(yaml.safe_dump(seed), file="edited.yaml")
    assert sorted((e.step, e.field) for e in info.value.errors) == [
        ("email-stakeholders", "with.subject"), ("generate-report", "with.score"),
        ("generate-report", "with.violations")]
    assert all("'scan-compliance', which is not an ancestor" in e.message for e in info.value.errors)


def test_agents_registered_without_a_capability_still_reject_a_step_using_it(db):
    apply_yaml(SEED004_AGENTS.replace("capabilities: [{name: sendEmail, action: echo}, {name: sendSlackAlert, ",
                                      "capabilities: [{name: sendSlackAlert, "))
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(SEED_COMPLIANCE)
    (error,) = info.value.errors
    assert (error.step, error.field) == ("email-stakeholders", "action")
    assert "agent 'notifier' has no capability 'sendEmail'" in error.message


def test_seed_shaped_capabilities_without_an_action_are_accepted_with_a_warning(db):
    apply_yaml(SEED004_AGENTS.replace("{name: auditProject, description: Check a project against standards, "
                                      "action: echo}", "{name: auditProject}"))
    compiled = services.compile_path(SEED_COMPLIANCE)
    (warning,) = compiled.warnings
    assert (warning.step, warning.field) == ("scan-compliance", "action")
    assert "runs unknown action 'compliance-checker.auditProject'" in warning.message


def test_a_capability_naming_an_unknown_action_is_an_error(db):
    apply_yaml(SEED004_AGENTS.replace("{name: auditProject, description: Check a project against standards, "
                                      "action: echo}", "{name: auditProject, action: no.such}"))
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(SEED_COMPLIANCE)
    (error,) = info.value.errors
    assert (error.step, error.field) == ("scan-compliance", "action")
    assert "runs unknown action 'no.such'" in error.message


def test_a_new_agent_is_created_a_changed_one_updated_and_an_unchanged_one_not(db):
    report = apply_yaml(SEED004_AGENTS)
    assert report.agents and {a["action"] for a in report.agents} == {"created"}
    assert all(a["changed"] for a in report.agents)
    audits = audit_count()
    report = apply_yaml(SEED004_AGENTS)
    assert not any(a["changed"] for a in report.agents)
    assert {a["action"] for a in report.agents} == {"unchanged"}
    assert audit_count() == audits
    report = apply_yaml(SEED004_AGENTS.replace("riskLevel: APPROVAL_REQUIRED", "riskLevel: AUTO"))
    assert [a["name"] for a in report.agents if a["changed"]] == ["patcher"]
    assert {a["name"]: a["action"] for a in report.agents}["patcher"] == "updated"
    assert {a["action"] for a in report.agents if a["name"] != "patcher"} == {"unchanged"}
    assert Agent.objects.get(name="patcher").risk == "AUTO"
    assert audit_count() == audits + 1


# --- cross-references to what is registered ---------------------------------------------------

def test_spawn_of_a_registered_workflow_is_accepted(db):
    with pytest.raises(SpecInvalid):
        apply_yaml("id: parent\nsteps: [{id: kid, spawn: {workflow: child}}]\n")
    apply_yaml("id: child\nsteps: [{id: a, action: noop}]\n")
    report = apply_yaml("id: parent\nsteps: [{id: kid, spawn: {workflow: child, strategy: callback}}]\n")
    assert report.workflows[0]["changed"] is True


def test_a_workflow_may_spawn_itself_and_its_blueprint_siblings(db):
    apply_yaml("""
name: family
workflows:
  - {id: elder, steps: [{id: a, spawn: {workflow: younger}}]}
  - {id: younger, steps: [{id: a, spawn: {workflow: younger, strategy: fire_and_forget}}]}
""")
    assert sorted(WorkflowDefinition.objects.values_list("key", flat=True)) == ["elder", "younger"]


# --- JSON input -------------------------------------------------------------------------------

def test_json_input_registers_like_yaml(db):
    spec = yaml.safe_load(REVIEW)
    report = services.definitions_apply(
        compiled=services.compile_source(json.dumps(spec), file="review.json"), actor="test")
    assert report.workflows == [{"id": "code-review", "version": 1, "changed": True, "action": "created"}]
    # the same content as YAML is the same spec: no new version
    assert apply_yaml(REVIEW).workflows[0]["changed"] is False
    assert WorkflowVersion.objects.get().source_file == "review.json"


def test_json_is_parsed_as_json_when_asked_even_without_the_extension(db):
    with pytest.raises(SpecInvalid) as info:
        services.compile_source("{'id': 'single-quoted'}", file="<request>", fmt="json")
    (error,) = info.value.errors
    assert error.message.startswith("invalid JSON at line 1 column 2")
    compiled = services.compile_source('{"id": "ok", "steps": [{"id": "a", "action": "noop"}]}', fmt="json")
    assert compiled.workflows[0].spec["id"] == "ok"


def test_apply_spec_helper_round_trips_a_dict(db):
    report = apply_spec({"id": "from-dict", "steps": [{"id": "a", "action": "noop", "retry": 3}]})
    spec = selectors.definition_get("from-dict").latest_version.spec
    assert report.workflows[0]["version"] == 1
    assert spec["steps"][0]["retry"]["max_attempts"] == 3


# --- the good corpus -------------------------------------------------------------------------

GOOD_FILES = sorted((Path(__file__).parent / "good").glob("*.yaml"))


def test_good_corpus_exists():
    assert len(GOOD_FILES) >= 3


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in GOOD_FILES])
def test_good_file_validates_cleanly_and_registers(db, settings, path):
    settings.DAC_RATE_LIMITS = "api=10/second"  # the bucket the corpus's rate-limited step names
    compiled = services.compile_path(path)
    # The only warning a good file may get: spawn / wait_for steps do not run yet.
    assert [w for w in compiled.warnings if "not executable yet" not in w.message] == []
    (doc,) = compiled.workflows
    raw = yaml.safe_load(path.read_text())
    assert [s["id"] for s in doc.spec["steps"]] == [s["id"] for s in raw.get("steps") or raw["nodes"]]
    report = services.definitions_apply(compiled=compiled, actor="test")
    assert report.workflows == [{"id": doc.spec["id"], "version": 1, "changed": True, "action": "created"}]
    assert WorkflowVersion.objects.get(definition__key=doc.spec["id"]).source == path.read_text()


def test_seed004_dialect_is_normalised_to_the_canonical_spec(db):
    spec = services.compile_path(Path(__file__).parent / "good" / "seed004-dialect-with-actions.yaml").workflows[0].spec
    assert spec["id"] == spec["name"] == "weekly-digest"
    assert spec["triggers"] == [{"type": "scheduled", "cron": "30 8 * * mon-fri", "timezone": "Europe/Paris",
                                 "context": {}, "overlap": "allow"}]
    digest = spec["steps"][1]
    assert digest["depends_on"] == ["collect-stats"]
    assert digest["on_error"] == "continue"
    assert digest["approval"]["timeout_action"] == "reject"
    assert digest["with"]["text"] == "Score: {{ nodes.collect-stats.output.score }}/100"


def test_design_example_is_normalised_with_its_defaults(db):
    spec = services.compile_path(Path(__file__).parent / "good" / "design-section-2.yaml").workflows[0].spec
    assert spec["priority"] == 5
    assert spec["budget"] == {"tokens": 200000, "cost_usd": 5.0, "on_exceed": "fail"}
    assert spec["concurrency"] == {"key": "{{ context.repo }}", "limit": 1, "strategy": "queue"}
    fetch, review, merge = spec["steps"]
    assert fetch["retry"] == {"max_attempts": 1, "backoff": "exponential", "base_seconds": 1.0,
                              "max_seconds": 300.0, "jitter": True}
    assert review["retry"]["max_seconds"] == 60.0
    assert merge["approval"]["approvers"] == ["tech_lead"]
    assert merge["compensate"] == {"action": "echo", "with": {"sha": "{{ steps.merge.output.sha }}"}}
    assert [t["type"] for t in spec["triggers"]] == ["manual", "event", "scheduled", "webhook"]


def test_join_any_with_one_dependency_is_only_a_warning(db):
    compiled = services.compile_source("""
id: lonely-any
steps:
  - {id: a, action: noop}
  - {id: b, action: noop, depends_on: [a], join: any}
""", file="w.yaml")
    (warning,) = compiled.warnings
    assert (warning.file, warning.step, warning.field) == ("w.yaml", "b", "join")
    assert "has no effect" in warning.message


# --- the command line -------------------------------------------------------------------------

def run_validate(*paths):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("dac", "validate", *map(str, paths), "--json", stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_dac_validate_json_on_the_seed_blueprint(db):
    code, result = run_validate(SEED_BLUEPRINT)
    assert code == 0
    assert result["valid"] is True and result["errors"] == []
    assert len(result["warnings"]) == 7
    for warning in result["warnings"]:
        assert {"file", "step", "field", "message"} <= set(warning)
        assert warning["field"] == "steps"
    assert WorkflowDefinition.objects.count() == 0  # validate never registers


def test_dac_validate_json_reports_errors_and_exits_1(db, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(REVIEW)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nsteps:\n  - {id: a, action: noop, depends_on: [c]}\n"
                   "  - {id: b, action: noop, depends_on: [a]}\n  - {id: c, action: noop, depends_on: [b]}\n")
    before = row_counts()
    code, result = run_validate(good, bad)
    assert code == 1
    assert set(result) == {"valid", "errors", "warnings"}
    assert result["valid"] is False
    assert result["warnings"] == []
    (error,) = result["errors"]
    assert {k: error[k] for k in ("file", "step", "field", "message")} == {
        "file": str(bad), "step": "a", "field": "depends_on", "message": "dependency cycle: a -> b -> c -> a"}
    assert row_counts() == before


def test_dac_validate_json_for_seed004_without_agents(db):
    code, result = run_validate(SEED_SECURITY)
    assert code == 1
    assert [e["step"] for e in result["errors"]] == ["scan", "assess", "notify-if-critical", "create-fix-pr"]
    assert "unknown agent 'security-scanner'" in result["errors"][0]["message"]


def test_dac_validate_accepts_a_json_file(db, tmp_path):
    path = tmp_path / "review.json"
    path.write_text(json.dumps(yaml.safe_load(REVIEW)))
    code, result = run_validate(path)
    assert (code, result) == (0, {"valid": True, "errors": [], "warnings": []})


def test_dac_apply_of_a_bad_file_registers_nothing(db, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: bad\nsteps: [{id: a, action: nope}]\n")
    before = row_counts()
    with pytest.raises(CommandError, match="1 error\\(s\\); nothing was registered"):
        call_command("dac", "apply", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert row_counts() == before


def test_dac_apply_json_report(db, tmp_path):
    path = tmp_path / "review.yaml"
    path.write_text(REVIEW)
    out = io.StringIO()
    call_command("dac", "apply", str(path), "--json", stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue()) == {
        "kind": "workflow", "workflows": [{"id": "code-review", "version": 1, "changed": True,
                                                 "action": "created"}],
        "agents": [], "warnings": []}
    assert WorkflowVersion.objects.get().source_file == str(path)


def test_dac_apply_says_created_for_new_agents_and_workflows_updated_for_changed_ones(db, tmp_path):
    def dac_apply(text):
        path = tmp_path / "bp.yaml"
        path.write_text(text)
        out = io.StringIO()
        call_command("dac", "apply", str(path), stdout=out, stderr=io.StringIO())
        return out.getvalue().splitlines()

    blueprint = SEED004_AGENTS.replace("workflows: []", "workflows:\n  - {id: solo, steps: [{id: a, action: noop}]}")
    first = dac_apply(blueprint)
    assert "agent patcher: created" in first and "agent notifier: created" in first
    assert "workflow solo: created v1" in first
    assert not [line for line in first if "updated" in line]
    again = dac_apply(blueprint)
    assert "agent patcher: unchanged" in again and "workflow solo: unchanged (v1)" in again
    changed = dac_apply(blueprint.replace("riskLevel: APPROVAL_REQUIRED", "riskLevel: AUTO")
                        .replace("action: noop}", "action: echo}"))
    assert "agent patcher: updated" in changed and "agent notifier: unchanged" in changed
    assert "workflow solo: updated v2" in changed


def test_dac_validate_says_plainly_that_a_definition_needs_an_id(db, tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("{}")
    code, result = run_validate(path)
    assert code == 1
    assert [(e["field"], e["message"]) for e in result["errors"]] == [
        ("id", "a workflow definition needs an id, e.g. 'id: code-review' "
               "(in the seed-004 dialect, 'name' is accepted in its place)")]
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("dac", "validate", str(path), stdout=io.StringIO(), stderr=err)
    assert f"error: {path}: field 'id': a workflow definition needs an id" in err.getvalue()
