"""Broken workflow and blueprint definitions: each gets one precise error and changes nothing.

Every case goes through `registry.services.compile_source` against a non-empty registry, and
would go on to `definitions_apply` if compiling wrongly succeeded; the row counts of
definitions, versions, agents, blueprints and audit entries must not move.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry import services
from registry.models import Agent, Blueprint, WorkflowDefinition
from registry.spec import SpecError, SpecInvalid

from .conftest import row_counts


@dataclass(frozen=True)
class Bad:
    text: str
    step: str | None
    field: str | None
    message: str
    file: str = "bad.yaml"
    workflow: str | None = None


def rejected(text, *, file="bad.yaml"):
    """Compile `text`; it must raise SpecInvalid before any row is written. Returns the exception."""
    before = row_counts()
    with pytest.raises(SpecInvalid) as info:
        compiled = services.compile_source(text, file=file)
        services.definitions_apply(compiled=compiled, actor="test")  # reached only if the bad input got through
    assert row_counts() == before
    return info.value


CASES = {
    "no_id": Bad("""
steps: [{id: a, action: noop}]
""", None, "id", "a workflow definition needs an id, e.g. 'id: code-review' (in the seed-004 dialect, 'name' is"),
    "empty_json_object": Bad("{}", None, "id", "a workflow definition needs an id", file="empty.json"),
    "id_that_is_an_api_route": Bad("""
id: match
steps: [{id: a, action: noop}]
""", None, "id", "'match' is reserved: /api/v1/workflows/match/ is an API route"),
    # --- the dependency graph ---------------------------------------------------------------
    "cycle_of_three": Bad("""
id: cyclic
steps:
  - {id: a, action: noop, depends_on: [c]}
  - {id: b, action: noop, depends_on: [a]}
  - {id: c, action: noop, depends_on: [b]}
""", "a", "depends_on", "dependency cycle: a -> b -> c -> a"),
    "self_dependency": Bad("""
id: selfish
steps:
  - {id: a, action: noop}
  - {id: b, action: noop, depends_on: [a, b]}
""", "b", "depends_on", "a step cannot depend on itself"),
    "unknown_dependency": Bad("""
id: dangling
steps:
  - {id: a, action: noop}
  - {id: b, action: noop, depends_on: [a, nope]}
""", "b", "depends_on", "depends on unknown step 'nope'"),
    "duplicate_step_ids": Bad("""
id: twins
steps:
  - {id: a, action: noop}
  - {id: b, action: noop, depends_on: [a]}
  - {id: a, action: echo}
""", "a", "id", "duplicate step id 'a'"),
    "no_steps_listed": Bad("id: empty\nsteps: []\n", None, "steps", "must list at least one step"),
    "step_without_id": Bad("id: anon\nsteps:\n  - {action: noop}\n", None, "steps[0].id",
                           "step 1 needs an 'id'"),
    # --- references to the registry ---------------------------------------------------------
    "unknown_action": Bad("""
id: typo-action
steps:
  - {id: a, action: no.such.action}
""", "a", "action", "unknown action 'no.such.action'"),
    "unknown_compensate_action": Bad("""
id: typo-compensate
steps:
  - {id: a, action: noop, compensate: {action: undo.nothing}}
""", "a", "compensate.action", "unknown action 'undo.nothing'"),
    "unknown_agent": Bad("""
id: ghostly
steps:
  - {id: a, agent: ghost-agent, action: haunt}
""", "a", "agent", "unknown agent 'ghost-agent'"),
    "agent_without_that_capability": Bad("""
id: incapable
steps:
  - {id: a, agent: baseline-agent, action: fly}
""", "a", "action", "agent 'baseline-agent' has no capability 'fly'"),
    "unknown_workflow_in_spawn": Bad("""
id: parent
steps:
  - {id: a, spawn: {workflow: no-such-child, strategy: wait}}
""", "a", "spawn.workflow", "unknown workflow 'no-such-child'"),
    # --- templates --------------------------------------------------------------------------
    "template_refers_to_non_ancestor": Bad("""
id: siblings
steps:
  - {id: a, action: echo}
  - {id: b, action: echo, with: {x: "{{ steps.a.output }}"}}
""", "b", "with.x", "template refers to step 'a', which is not an ancestor of this step"),
    "template_refers_to_descendant_in_when": Bad("""
id: backwards
steps:
  - {id: a, action: echo, when: "{{ steps.b.status == 'completed' }}"}
  - {id: b, action: echo, depends_on: [a]}
""", "a", "when", "template refers to step 'b', which is not an ancestor"),
    "template_refers_to_unknown_step": Bad("""
id: lost
steps:
  - {id: a, action: echo}
  - {id: b, action: echo, depends_on: [a], with: {x: ["ok", "{{ steps.zzz.output }}"]}}
""", "b", "with.x[1]", "template refers to unknown step 'zzz'"),
    "template_misspells_hyphenated_step": Bad("""
id: hyphens
nodes:
  - {id: scan-compliance, action: echo}
  - {id: report, action: echo, dependsOn: [scan-compliance],
     inputs: {score: "{{ nodes.scan-complance.output.score }}"}}
""", "report", "with.score", "template refers to unknown step 'scan-complance'"),
    "unknown_template_namespace": Bad("""
id: foobar
steps:
  - {id: a, action: echo, with: {x: "{{ foo.bar }}"}}
""", "a", "with.x", "template uses unknown name 'foo'"),
    "item_outside_foreach": Bad("""
id: itemless
steps:
  - {id: a, action: echo, with: {x: "{{ item }}"}}
""", "a", "with.x", "'item' and 'index' exist only in a foreach step's inputs"),
    "item_in_foreach_condition": Bad("""
id: item-when
steps:
  - {id: a, action: echo, foreach: "{{ context.things }}", when: "{{ item > 1 }}", with: {x: "{{ item }}"}}
""", "a", "when", "'item' and 'index' exist only in a foreach step's inputs"),
    "template_syntax_error": Bad("""
id: unclosed
steps:
  - {id: a, action: echo, with: {x: "{{ context.x + }}"}}
""", "a", "with.x", "template syntax error"),
    "template_unknown_filter": Bad("""
id: filtered
steps:
  - {id: a, action: echo, with: {x: "{{ context.x | frobnicate }}"}}
""", "a", "with.x", "No filter named 'frobnicate'"),
    "result_refers_to_unknown_step": Bad("""
id: resultless
result: {verdict: "{{ steps.review.output.verdict }}"}
steps:
  - {id: a, action: echo}
""", None, "result.verdict", "template refers to unknown step 'review'"),
    "emit_payload_refers_to_unknown_step": Bad("""
id: emitter
steps:
  - {id: a, action: echo, emit: [started, {event: done, payload: {score: "{{ steps.scorer.output }}"}}]}
""", "a", "emit[1].payload.score", "template refers to unknown step 'scorer'"),
    # --- wrong field types ------------------------------------------------------------------
    "retry_is_a_word": Bad("""
id: retry-word
steps:
  - {id: a, action: noop, retry: "three"}
""", "a", "retry", "must be a number of attempts or a mapping, got a string"),
    "timeout_is_a_word": Bad("""
id: timeout-word
steps:
  - {id: a, action: noop, timeout_seconds: "x"}
""", "a", "timeout_seconds", "must be a number, got a string"),
    "depends_on_is_a_number": Bad("""
id: deps-number
steps:
  - {id: a, action: noop, depends_on: 5}
""", "a", "depends_on", "must be a list of strings, got an integer"),
    "with_is_a_list": Bad("""
id: with-list
steps:
  - {id: a, action: echo, with: [1]}
""", "a", "with", "must be a mapping, got a list"),
    "max_concurrent_is_a_boolean": Bad("id: flag\nmax_concurrent: true\nsteps: [{id: a, action: noop}]\n",
                                       None, "max_concurrent", "must be an integer, got a boolean"),
    "steps_is_a_mapping": Bad("id: mapped\nsteps: {a: {action: noop}}\n", None, "steps",
                              "must be a list of steps, got a mapping"),
    "negative_timeout": Bad("""
id: negative
steps:
  - {id: a, action: noop, timeout_seconds: -5}
""", "a", "timeout_seconds", "must be greater than 0, got -5"),
    "workflow_is_a_list": Bad("- id: a\n- id: b\n", None, None, "a workflow must be a mapping, got a list"),
    # --- triggers ---------------------------------------------------------------------------
    "cron_with_four_fields": Bad("""
id: cron-short
triggers:
  - {type: manual}
  - {type: scheduled, cron: "0 9 * *"}
steps: [{id: a, action: noop}]
""", None, "triggers[1].cron", "must have 5 fields (minute hour day month weekday), got 4"),
    "cron_with_unparsable_field": Bad("""
id: cron-bad
triggers: [{type: scheduled, cron: "61 9 * * 1"}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].cron", "the minute field '61' is invalid"),
    "cron_with_unknown_weekday": Bad("""
id: cron-weekday
triggers: [{type: scheduled, cron: "0 9 * * funday"}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].cron", "the weekday field 'funday' is invalid"),
    "seed004_schedule_unparsable": Bad("""
name: seed-style
trigger: {schedule: "0 25 * * 1"}
nodes: [{id: a, action: noop}]
""", None, "trigger.schedule", "the hour field '25' is invalid"),
    "unknown_timezone": Bad("""
id: mars-time
triggers: [{type: scheduled, cron: "0 9 * * 1", timezone: Mars/Olympus_Mons}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].timezone", "unknown time zone 'Mars/Olympus_Mons'"),
    "webhook_path_without_slash": Bad("""
id: hook
triggers: [{type: webhook, path: support/ticket}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].path", "must start with '/'"),
    "webhook_path_with_dot_segments": Bad("""
id: hook-dots
triggers: [{type: webhook, path: "/support/../admin"}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].path", "between single slashes"),
    "webhook_secret_not_a_name": Bad("""
id: hook-secret
triggers: [{type: webhook, path: /in, secret: "my secret!"}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].secret", "must be a secret name"),
    "duplicate_webhook_path_across_blueprint_workflows": Bad("""
name: hooks-twice
workflows:
  - {id: hook-one, triggers: [{type: webhook, path: /same}], steps: [{id: a, action: noop}]}
  - {id: hook-two, triggers: [{type: webhook, path: /same}], steps: [{id: a, action: noop}]}
""", None, "triggers[0].path", "webhook path '/same' is already used by workflow 'hook-one'", workflow="hook-two"),
    "filter_value_is_a_mapping": Bad("""
id: filtered
triggers: [{type: event, event: pr_opened, filters: {pr: {author: bob}}}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].filters.pr", "use a dotted path for nested fields"),
    "filter_key_is_not_a_dotted_path": Bad("""
id: filtered-path
triggers: [{type: event, event: pr_opened, filters: {"pr..author": bob}}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].filters.pr..author", "is not a dotted path into the payload"),
    "filters_not_a_mapping": Bad("""
id: filtered-list
triggers: [{type: event, event: pr_opened, filters: [repo]}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].filters", "must be a mapping, got a list"),
    "debounce_without_seconds": Bad("""
id: bouncy
triggers: [{type: event, event: edited, debounce: {key: "{{ trigger.payload.doc }}"}}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].debounce.seconds", "is required"),
    "debounce_with_negative_seconds": Bad("""
id: bouncy-negative
triggers: [{type: event, event: edited, debounce: {seconds: -5}}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].debounce.seconds", "must be greater than 0, got -5"),
    "debounce_key_reads_an_unknown_name": Bad("""
id: bouncy-steps
triggers: [{type: event, event: edited, debounce: {key: "{{ steps.a.output }}", seconds: 2}}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].debounce.key", "template uses unknown name 'steps'"),
    "unknown_overlap_policy": Bad("""
id: overlapping
triggers: [{type: scheduled, cron: "* * * * *", overlap: queue}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].overlap", "must be one of allow, skip, buffer_one, cancel_other, got 'queue'"),
    "auto_spawn_of_an_unknown_workflow": Bad("""
name: spawny
workflows: [{id: spawn-target, steps: [{id: a, action: noop}]}]
coordination:
  auto_spawn: [{on_event: bug_found, spawn: no-such-flow}]
""", None, "coordination.auto_spawn[0].spawn", "unknown workflow 'no-such-flow'"),
    "auto_spawn_without_on_event": Bad("""
name: spawny-event
workflows: [{id: spawn-target-2, steps: [{id: a, action: noop}]}]
coordination:
  auto_spawn: [{spawn: spawn-target-2, priority: high}]
""", None, "coordination.auto_spawn[0].on_event", "is required"),
    "auto_spawn_with_a_bad_priority": Bad("""
name: spawny-priority
workflows: [{id: spawn-target-3, steps: [{id: a, action: noop}]}]
coordination:
  auto_spawn: [{on_event: x, spawn: spawn-target-3, priority: asap}]
""", None, "coordination.auto_spawn[0].priority", "must be one of low, normal, high, critical or 0..9"),
    "wait_for_with_a_bad_on_timeout": Bad("""
id: waiter
steps:
  - {id: a, wait_for: {event: reply, on_timeout: retry}}
""", "a", "wait_for.on_timeout", "must be one of fail, continue, got 'retry'"),
    "wait_for_match_reads_a_later_step": Bad("""
id: waiter-later
steps:
  - {id: a, wait_for: {event: reply, correlation_id: "{{ steps.b.output }}"}}
  - {id: b, action: noop, depends_on: [a]}
""", "a", "wait_for.correlation_id", "which is not an ancestor"),
    "spawn_context_of_the_wrong_type": Bad("""
id: spawn-context
steps:
  - {id: a, spawn: {workflow: existing-flow, context: [1, 2]}}
""", "a", "spawn.context", "must be a mapping or a template yielding one, got a list"),
    "emit_with_a_bad_priority": Bad("""
id: emitter
steps:
  - {id: a, action: noop, emit: [{event: done, priority: 12}]}
""", "a", "emit[0].priority", "must be one of low, normal, high, critical or 0..9"),
    "secret_passed_to_a_child": Bad("""
id: leaky-spawn
steps:
  - {id: a, spawn: {workflow: existing-flow, context: {token: "{{ secrets.TEST_TOKEN }}"}}}
""", "a", "spawn.context.token", "'secrets' cannot be used here: what this renders is stored"),
    "secret_in_a_wait_match": Bad("""
id: leaky-wait
steps:
  - {id: a, wait_for: {event: reply, match: {token: "{{ secrets.TEST_TOKEN }}"}}}
""", "a", "wait_for.match.token", "'secrets' cannot be used here"),
    "event_trigger_name_too_long": Bad(f"""
id: long-event
triggers: [{{type: event, event: {'e' * 201}}}]
steps: [{{id: a, action: noop}}]
""", None, "triggers[0].event", "is not an event type"),
    "emitted_event_name_with_spaces": Bad("""
id: spacey
steps:
  - {id: a, action: noop, emit: ["pr created"]}
""", "a", "emit[0]", "is not an event type"),
    "webhook_path_too_long": Bad(f"""
id: long-hook
triggers: [{{type: webhook, path: /{'p' * 250}}}]
steps: [{{id: a, action: noop}}]
""", None, "triggers[0].path", "at most 200"),
    "wait_timeout_beyond_a_year": Bad("""
id: forever
steps:
  - {id: a, wait_for: {event: reply, timeout_seconds: 1.0e+15}}
""", "a", "wait_for.timeout_seconds", "must be at most"),
    "instance_timeout_beyond_a_year": Bad("""
id: forever-instance
timeout_minutes: 1.0e+12
steps: [{id: a, action: noop}]
""", None, "timeout_minutes", "must be at most"),
    "glob_with_too_many_alternatives": Bad("""
id: bracy
triggers: [{type: event, event: x, filters: {f: "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}"}}]
steps: [{id: a, action: noop}]
""", None, "triggers[0].filters.f", "at most 64"),
    # --- names and unknown fields -----------------------------------------------------------
    "bad_workflow_id": Bad("id: Bad_ID\nsteps: [{id: a, action: noop}]\n", None, "id", "'Bad_ID' must match"),
    "unknown_step_field": Bad("""
id: typo-field
steps:
  - {id: a, action: noop}
  - {id: b, action: noop, depend_on: [a]}
""", "b", "depend_on", "unknown field (did you mean 'depends_on'?)"),
    "unknown_workflow_field": Bad("id: typo-top\ntirggers: []\nsteps: [{id: a, action: noop}]\n", None, "tirggers",
                                  "unknown field (did you mean 'triggers'?)"),
    "alias_and_canonical_together": Bad("""
id: doubled
steps:
  - {id: a, action: noop}
  - {id: b, action: noop, depends_on: [a], dependsOn: [a]}
""", "b", "dependsOn", "is an alias of 'depends_on': give only one of them"),
    "action_and_spawn_together": Bad("""
id: both
steps:
  - {id: a, action: noop, spawn: {workflow: existing-flow}}
""", "a", "spawn", "not both 'action' and 'spawn'"),
    "invalid_output_schema": Bad("""
id: schema
steps:
  - {id: a, action: echo, output_schema: {type: object, properties: {n: {type: integr}}}}
""", "a", "output_schema", "is not a valid JSON Schema"),
    # --- syntax -----------------------------------------------------------------------------
    "invalid_yaml": Bad("""id: broken
steps:
  - {id: a, action: noop}
  - {id: b, action: noop
  - id: c
""", None, None, "invalid YAML at line 5: expected ',' or '}', but got ':' "
                         "(while parsing a flow mapping that starts at line 4)"),
    "invalid_json": Bad('{"id": "j", "steps": [\n  {"id": "a", "action": "noop"},\n]}', None, None,
                        "invalid JSON at line 3", file="bad.json"),
    # --- enumerations -----------------------------------------------------------------------
    "bad_join": Bad("""
id: join
steps:
  - {id: a, action: noop}
  - {id: b, action: noop}
  - {id: c, action: noop, depends_on: [a, b], join: some}
""", "c", "join", "must be one of all, any, got 'some'"),
    "bad_on_error": Bad("""
id: on-error
steps:
  - {id: a, action: noop, on_error: ignore}
""", "a", "on_error", "must be 'fail' or 'continue', got 'ignore'"),
    "bad_backoff": Bad("""
id: backoff
steps:
  - {id: a, action: noop, retry: {max_attempts: 3, backoff: quadratic}}
""", "a", "retry.backoff", "must be one of exponential, linear, fixed, got 'quadratic'"),
    "bad_workflow_type": Bad("id: typed\ntype: dev\nsteps: [{id: a, action: noop}]\n", None, "type",
                             "must be one of development, content, data, operations, support, governance, got 'dev'"),
    "bad_priority_word": Bad("id: urgent\npriority: urgent\nsteps: [{id: a, action: noop}]\n", None, "priority",
                             "must be one of low, normal, high, critical or 0..9, got 'urgent'"),
    "bad_priority_number": Bad("id: loud\npriority: 10\nsteps: [{id: a, action: noop}]\n", None, "priority",
                               "or 0..9, got 10"),
    "bad_trigger_type": Bad("id: trig\ntriggers: [{type: cron}]\nsteps: [{id: a, action: noop}]\n", None,
                            "triggers[0].type", "must be one of manual, event, scheduled, webhook, got 'cron'"),
    "bad_approval_timeout_action": Bad("""
id: approve
steps:
  - {id: a, action: noop, approval: {approvers: [lead], timeout_action: shrug}}
""", "a", "approval.timeout_action", "must be one of approve, reject, escalate, got 'shrug'"),
    "bad_spawn_strategy": Bad("""
id: spawner
steps:
  - {id: a, spawn: {workflow: existing-flow, strategy: later}}
""", "a", "spawn.strategy", "must be one of wait, callback, fire_and_forget, supervised, got 'later'"),
    # --- a broken change to a registered workflow must leave the registered version alone ---
    "broken_update_of_registered_workflow": Bad("""
id: existing-flow
steps:
  - {id: only, action: noop, depends_on: [missing]}
""", "only", "depends_on", "depends on unknown step 'missing'"),
    # --- blueprints -------------------------------------------------------------------------
    "blueprint_with_one_broken_workflow": Bad("""
name: mixed
workflows:
  - id: fine-one
    steps: [{id: a, action: noop}]
  - id: broken-one
    steps:
      - {id: a, action: noop}
      - {id: b, action: noop, depends_on: [a], retry: {backoff: sideways}}
  - id: fine-two
    steps: [{id: a, spawn: {workflow: fine-one}}]
""", "b", "retry.backoff", "got 'sideways'", file="bp.yaml", workflow="broken-one"),
    "blueprint_workflow_ids_clash": Bad("""
name: clash
workflows:
  - {id: same, steps: [{id: a, action: noop}]}
  - {id: same, steps: [{id: b, action: noop}]}
""", None, "id", "workflow id 'same' appears twice in the blueprint", file="bp.yaml", workflow="same"),
    "blueprint_without_name": Bad("workflows:\n  - {id: w, steps: [{id: a, action: noop}]}\n", None, "name",
                                  "is required for a blueprint", file="bp.yaml"),
    "blueprint_agent_defined_twice": Bad("""
name: agents-twice
agents:
  - {name: helper, capabilities: [{name: a}]}
  - {name: helper, capabilities: [{name: b}]}
workflows: []
""", None, "agents[1].name", "agent 'helper' is already defined at agents[0]", file="bp.yaml"),
    "blueprint_agent_bad_risk": Bad("""
name: risky
agents:
  - {name: helper, riskLevel: YOLO, capabilities: [{name: a}]}
workflows: []
""", None, "agents[0].riskLevel", "must be one of AUTO, APPROVAL_REQUIRED, got 'YOLO'", file="bp.yaml"),
    "blueprint_entry_not_a_mapping": Bad("name: odd\nworkflows: [42]\n", None, None,
                                         "a workflow must be a mapping, got an integer", file="bp.yaml",
                                         workflow="workflows[0]"),
    "blueprint_agent_step_uses_missing_capability": Bad("""
name: capable
agents:
  - name: scanner
    type: LLM
    riskLevel: AUTO
    capabilities: [{name: scanRepository}]
workflows:
  - id: scan-flow
    nodes:
      - {id: scan, agent: scanner, action: scanRepo}
""", "scan", "action", "agent 'scanner' has no capability 'scanRepo'", file="bp.yaml", workflow="scan-flow"),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
def test_bad_definition_is_rejected_with_a_precise_error(baseline, case):
    exc = rejected(case.text, file=case.file)
    assert len(exc.errors) == 1, [str(e) for e in exc.errors]
    (error,) = exc.errors
    assert isinstance(error, SpecError)
    assert (error.file, error.step, error.field, error.workflow) == (case.file, case.step, case.field, case.workflow)
    assert case.message in error.message
    # The one-line form a user sees names the same place.
    text = str(error)
    assert text.startswith(case.file) and text.endswith(error.message)
    for part in (case.step, case.field, case.workflow):
        if part:
            assert f"'{part}'" in text


def test_corpus_is_large_and_distinct():
    assert len(CASES) >= 20
    assert len({c.text for c in CASES.values()}) == len(CASES)


def test_broken_blueprint_registers_nothing_not_even_its_good_workflows(baseline):
    text = """
name: half-good
agents:
  - {name: fresh-agent, capabilities: [{name: work, action: noop}]}
workflows:
  - id: good-one
    steps: [{id: a, agent: fresh-agent, action: work}]
  - id: bad-one
    steps: [{id: a, action: does.not.exist}]
"""
    exc = rejected(text, file="half-good.yaml")
    assert [(e.workflow, e.step, e.field) for e in exc.errors] == [("bad-one", "a", "action")]
    assert "unknown action 'does.not.exist'" in exc.errors[0].message
    assert not WorkflowDefinition.objects.filter(key__in=["good-one", "bad-one"]).exists()
    assert not Agent.objects.filter(name="fresh-agent").exists()
    assert not Blueprint.objects.filter(name="half-good").exists()
    # The same blueprint without the broken entry is accepted: the good workflow was not the problem.
    good_only = text.split("  - id: bad-one")[0]
    compiled = services.compile_source(good_only, file="half-good.yaml")
    assert [d.spec["id"] for d in compiled.workflows] == ["good-one"]


def test_all_faults_of_a_document_are_reported_together(baseline):
    exc = rejected("""
id: many-faults
steps:
  - {id: a, action: noop, retry: "three", timeout_seconds: "x", depends_on: 5, with: [1]}
""")
    assert sorted((e.step, e.field) for e in exc.errors) == [
        ("a", "depends_on"), ("a", "retry"), ("a", "timeout_seconds"), ("a", "with"),
    ]


def test_errors_in_two_blueprint_workflows_each_name_their_workflow(baseline):
    exc = rejected("""
name: two-bad
workflows:
  - id: first
    steps: [{id: a, action: nope.one}]
  - id: second
    steps: [{id: b, action: noop, depends_on: [zz]}]
""", file="two.yaml")
    assert sorted((e.workflow, e.step, e.field) for e in exc.errors) == [
        ("first", "a", "action"), ("second", "b", "depends_on"),
    ]
    assert all(e.file == "two.yaml" for e in exc.errors)


def test_blueprint_file_entry_error_names_the_referenced_file(baseline, tmp_path):
    (tmp_path / "flows").mkdir()
    broken = tmp_path / "flows" / "broken.yaml"
    broken.write_text("id: from-file\nsteps:\n  - {id: a, action: noop, join: maybe}\n")
    blueprint = tmp_path / "bp.yaml"
    blueprint.write_text("name: by-file\nworkflows:\n  - {id: from-file, file: flows/broken.yaml}\n")
    before = row_counts()
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(blueprint)
    assert row_counts() == before
    (error,) = info.value.errors
    assert (error.file, error.workflow, error.step, error.field) == (str(broken), "from-file", "a", "join")


def test_blueprint_file_entry_that_is_missing_or_names_another_id(baseline, tmp_path):
    (tmp_path / "other.yaml").write_text("id: other\nsteps: [{id: a, action: noop}]\n")
    blueprint = tmp_path / "bp.yaml"
    blueprint.write_text("name: by-file\nworkflows:\n"
                         "  - {file: missing.yaml}\n"
                         "  - {id: expected, file: other.yaml}\n")
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(blueprint)
    errors = {e.field: e for e in info.value.errors}
    assert set(errors) == {"workflows[0].file", "workflows[1].id"}
    assert "cannot read" in errors["workflows[0].file"].message
    assert "names 'expected' but the file defines 'other'" in errors["workflows[1].id"].message
    assert all(e.file == str(blueprint) for e in info.value.errors)


def test_invalid_yaml_in_a_file_names_the_file_and_line(baseline, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: broken\nsteps:\n  - id: a\n   action: noop\n")
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(path)
    (error,) = info.value.errors
    assert error.file == str(path)
    assert error.message.startswith("invalid YAML at line 4")


def test_unreadable_file_is_an_error_not_a_crash(baseline, tmp_path):
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(tmp_path / "nope.yaml")
    (error,) = info.value.errors
    assert error.file == str(tmp_path / "nope.yaml")
    assert "cannot read file" in error.message


def test_spec_invalid_serialises_every_error(baseline):
    exc = rejected(json.dumps({"id": "j", "steps": [{"id": "a", "action": "nope"}]}), file="j.json")
    assert [e.as_dict() for e in exc.errors] == [
        {"file": "j.json", "step": "a", "field": "action", "message": "unknown action 'nope'", "workflow": None},
    ]
    assert str(exc) == "j.json: step 'a': field 'action': unknown action 'nope'"


BAD_FILES = sorted((Path(__file__).parent / "bad").glob("*.yaml"))


def test_file_corpus_exists():
    assert len(BAD_FILES) >= 3


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in BAD_FILES])
def test_bad_file_is_rejected(baseline, path):
    """tests/registry/bad/*.yaml: the first line is `# expect: step | field | message` (blank = None)."""
    header = path.read_text().splitlines()[0]
    assert header.startswith("# expect:"), path
    step, field, message = (part.strip() or None for part in header[len("# expect:"):].split("|"))
    before = row_counts()
    with pytest.raises(SpecInvalid) as info:
        services.compile_path(path)
    assert row_counts() == before
    (error,) = info.value.errors
    assert (error.file, error.step, error.field) == (str(path), step, field)
    assert message in error.message


def test_a_webhook_path_owned_by_another_registered_workflow_is_refused(baseline):
    from tests.support.helpers import apply_yaml

    apply_yaml("id: hook-owner\ntriggers: [{type: webhook, path: /owned}]\nsteps: [{id: a, action: noop}]\n")
    exc = rejected("id: hook-thief\ntriggers: [{type: webhook, path: /owned}]\nsteps: [{id: a, action: noop}]\n")
    assert [(e.field, e.message) for e in exc.errors] == [
        ("triggers[0].path", "webhook path '/owned' is already used by workflow 'hook-owner'")]
    # The owner itself may keep (or change) its own path.
    apply_yaml("id: hook-owner\ntriggers: [{type: webhook, path: /owned}]\nsteps: [{id: b, action: noop}]\n")
