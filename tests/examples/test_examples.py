"""The shipped examples (examples/*.yaml): they validate and apply, and they run end to end
on real Celery workers the way examples/README.md says they do."""
from pathlib import Path

import pytest
import yaml

from governance.escalations.services import step_decide
from orchestration.models import Event, StepAttempt, StepItem, StepRun, WorkflowInstance
from registry import services as registry
from registry.models import Agent, DefinitionStatus, WorkflowDefinition
from tests.support.helpers import finished, start, step, step_reaches, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))
RUN_TIMEOUT = 60

# The seed blueprint (seed 000 §9.1) verbatim, minus its comments: the completed example must
# keep its name, description, workflow ids/types/triggers/emits, coordination and governance.
SEED_BLUEPRINT = """
name: software-company-dac
description: Distributed Autonomous Corporation for software development
workflows:
  - id: product-ideation
    type: operations
    triggers:
      - {type: scheduled, cron: "0 9 * * 1"}
      - {type: event, event: customer_feedback_threshold}
    emits: [feature_request_created]
  - id: product-prioritization
    type: operations
    triggers:
      - {type: event, event: feature_request_created}
    emits: [work_item_prioritized]
  - id: software-development
    type: development
    triggers:
      - {type: event, event: work_item_prioritized}
      - {type: manual}
    emits: [pr_created, code_deployed]
  - id: code-review
    type: development
    triggers:
      - {type: event, event: pr_created}
    emits: [pr_approved, pr_rejected]
  - id: deployment-pipeline
    type: operations
    triggers:
      - {type: event, event: pr_approved}
    emits: [deployment_completed]
  - id: customer-support
    type: support
    triggers:
      - {type: webhook, path: /support/ticket}
    emits: [support_resolved, bug_report_created]
  - id: incident-response
    type: operations
    triggers:
      - {type: event, event: alert_triggered}
    emits: [incident_resolved]
coordination:
  auto_spawn:
    - {on_event: customer_feedback_threshold, spawn: product-ideation}
    - {on_event: bug_report_created, spawn: software-development, priority: high}
  resources:
    api_tokens: {development: 60%, support: 25%, operations: 15%}
  escalation:
    - {condition: workflow_duration > 4h, action: notify_team_lead}
    - {condition: cost_estimate > $50, action: require_approval}
    - {condition: deployment_to_production, action: require_approval, approvers: [tech_lead, devops]}
governance:
  approval_required: [production_deployment, infrastructure_changes, cost_over_threshold]
  auto_approve: [routine_bug_fixes, documentation_updates, test_additions]
  human_oversight: {review_frequency: daily, metrics_dashboard: enabled, cost_alerts: enabled}
"""


def apply_example(name):
    compiled = registry.compile_path(EXAMPLES / name)
    return registry.definitions_apply(compiled=compiled, actor="test")


def run(workflow, context=None, *, timeout=RUN_TIMEOUT):
    return finished(start(workflow, context or {}), timeout=timeout)


def steps_of(instance):
    return {r.step_id: r for r in StepRun.objects.filter(instance_id=instance.id)}


def events_of(instance):
    """The events the workflow's steps emitted (the engine's and governance's lifecycle events left out)."""
    emitted = Event.objects.filter(source_instance_id=instance.id)
    for system in ("workflow.", "step.", "governance."):
        emitted = emitted.exclude(event_type__startswith=system)
    return sorted(emitted.values_list("event_type", flat=True))


def tokens_of(instance):
    return sum(a.tokens_in + a.tokens_out for a in StepAttempt.objects.filter(step_run__instance_id=instance.id))


# --- (a) every example validates and applies -------------------------------------------------


def test_the_examples_are_all_there():
    assert {p.name for p in FILES} >= {"demo-diamond.yaml", "foreach-map.yaml", "approval-gate.yaml",
                                       "saga-rollback.yaml", "software-company.yaml"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_validates_and_applies(path):
    compiled = registry.compile_path(path)
    assert compiled.warnings == []
    assert compiled.workflows and all(doc.spec["steps"] for doc in compiled.workflows)

    report = registry.definitions_apply(compiled=compiled, actor="test")

    assert report.workflows and all(w["changed"] and w["version"] == 1 for w in report.workflows)
    # everything in a first apply is new: "created", never "updated"
    assert {entry["action"] for entry in report.workflows + report.agents} == {"created"}
    for w in report.workflows:
        assert WorkflowDefinition.objects.get(key=w["id"]).status == DefinitionStatus.ACTIVE
    again = registry.definitions_apply(compiled=registry.compile_path(path), actor="test")
    assert not any(w["changed"] for w in again.workflows + again.agents)
    assert {entry["action"] for entry in again.workflows + again.agents} == {"unchanged"}


@pytest.mark.django_db
def test_software_company_is_the_seed_blueprint_completed():
    seed = yaml.safe_load(SEED_BLUEPRINT)
    example = yaml.safe_load((EXAMPLES / "software-company.yaml").read_text())

    assert (example["name"], example["description"]) == (seed["name"], seed["description"])
    assert example["coordination"] == seed["coordination"]
    assert example["governance"] == seed["governance"]
    keep = ("id", "type", "triggers", "emits")
    assert [{k: w[k] for k in keep} for w in example["workflows"]] == [{k: w[k] for k in keep}
                                                                       for w in seed["workflows"]]
    compiled = registry.compile_path(EXAMPLES / "software-company.yaml")
    assert {a["name"] for a in compiled.agents} >= {"product-manager", "developer", "reviewer", "devops",
                                                    "support-agent"}
    for doc in compiled.workflows:
        emitted = {e["event"] for s in doc.spec["steps"] for e in s["emit"]}
        assert emitted == set(doc.spec["emits"]), f"{doc.spec['id']}: steps emit {emitted}"


# --- (b) they run on real workers ---------------------------------------------------------------


def test_demo_diamond_runs_without_context(live):
    apply_example("demo-diamond.yaml")

    instance = run("demo-diamond")

    assert instance.status == "completed", instance.error
    assert instance.result["feature"] == "user login"
    assert instance.result["branches"] == 2
    assert "backend-engineer handled: user login / part 1" in instance.result["summary"]
    assert "frontend-engineer handled: user login / part 2" in instance.result["summary"]
    runs = steps_of(instance)
    assert {sid: r.status for sid, r in runs.items()} == dict.fromkeys(("plan", "backend", "frontend", "merge"),
                                                                         "completed")
    backend, frontend = runs["backend"], runs["frontend"]
    # the two branches ran at the same time, and the merge waited for both
    assert max(backend.started_at, frontend.started_at) < min(backend.finished_at, frontend.finished_at)
    assert runs["merge"].started_at >= max(backend.finished_at, frontend.finished_at)
    for attempt in StepAttempt.objects.filter(step_run__instance_id=instance.id):
        assert attempt.tokens_in > 0 and attempt.tokens_out > 0 and attempt.model == "gpt-4o-mini"
    assert (instance.finished_at - instance.started_at).total_seconds() < 15


def test_foreach_map_outputs_come_in_item_order(live):
    apply_example("foreach-map.yaml")

    instance = run("foreach-map", {"feature": "search", "parts": 5})

    assert instance.status == "completed", instance.error
    runs = steps_of(instance)
    tasks = runs["plan"].output["tasks"]
    assert tasks == [f"search / part {i}" for i in range(1, 6)]
    outputs = runs["code"].output
    assert [o["task"] for o in outputs] == [f"#{i + 1} {task}" for i, task in enumerate(tasks)]
    items = StepItem.objects.filter(step_run=runs["code"]).order_by("index")
    assert [i.status for i in items] == ["completed"] * 5
    assert [i.output for i in items] == outputs
    assert runs["merge"].output["count"] == 5
    assert instance.result == {
        "tasks": tasks,
        "commits": [o["commit"] for o in outputs],
        "lines": sum(o["lines"] for o in outputs),
        "merged": 5,
    }


def test_approval_gate_waits_then_deploys_when_approved(live):
    apply_example("approval-gate.yaml")
    instance = start("approval-gate", {"version": "2.0.0"})

    step_reaches(instance, "deploy_production", "waiting_approval", timeout=RUN_TIMEOUT)

    assert WorkflowInstance.objects.get(id=instance.id).status == "waiting"
    assert step(instance, "smoke_test").status == "completed"
    assert not StepAttempt.objects.filter(step_run=step(instance, "deploy_production")).exists()
    assert "deployment_completed" not in events_of(instance)

    step_decide(instance_id=instance.id, step_id="deploy_production", decision="approve", actor="test")
    instance = finished(instance, timeout=RUN_TIMEOUT)

    assert instance.status == "completed", instance.error
    assert instance.result == {"version": "2.0.0", "url": "https://production.example.test"}
    assert step(instance, "deploy_production").approved_by == "test"
    assert events_of(instance) == ["deployment_completed"]


def test_approval_gate_rejected_rolls_back_staging(live):
    apply_example("approval-gate.yaml")
    instance = start("approval-gate")
    step_reaches(instance, "deploy_production", "waiting_approval", timeout=RUN_TIMEOUT)

    step_decide(instance_id=instance.id, step_id="deploy_production", decision="reject", actor="test",
                       comment="not on a Friday")
    instance = finished(instance, timeout=RUN_TIMEOUT)

    assert instance.status == "failed"
    assert instance.error["step"] == "deploy_production"
    runs = steps_of(instance)
    assert runs["deploy_production"].status == "failed"
    assert runs["deploy_production"].error["type"] == "Rejected"
    assert runs["deploy_staging"].status == "compensated"
    assert runs["build"].status == runs["smoke_test"].status == "completed"  # nothing to undo


def test_saga_rollback_compensates_in_reverse_completion_order(live):
    apply_example("saga-rollback.yaml")

    instance = run("saga-rollback")

    assert instance.status == "failed"
    assert instance.error["step"] == "ship"
    runs = steps_of(instance)
    assert runs["ship"].status == "failed"
    assert runs["ship"].attempts - runs["ship"].attempt_base == 2  # retried once before the saga
    assert runs["notify_customer"].status == "completed"  # no compensate: stays completed
    compensated = [r for r in runs.values() if r.status == "compensated"]
    assert {r.step_id for r in compensated} == {"reserve_stock", "charge_card"}
    assert all(r.compensated_at for r in compensated)
    by_undo = [r.step_id for r in sorted(compensated, key=lambda r: r.compensated_at)]
    by_completion = [r.step_id for r in sorted(compensated, key=lambda r: r.completed_seq, reverse=True)]
    assert by_undo == by_completion == ["charge_card", "reserve_stock"]
    assert runs["charge_card"].output["amount"] == 99
    assert runs["reserve_stock"].output["reservation"] == "SKU-42x2"


def test_software_development_from_the_blueprint_end_to_end(live):
    apply_example("software-company.yaml")
    assert Agent.objects.filter(name="devops", risk="APPROVAL_REQUIRED").exists()
    instance = start("software-development", {"feature": "user login", "parts": 3})

    step_reaches(instance, "merge", "waiting_approval", timeout=RUN_TIMEOUT)

    runs = steps_of(instance)
    assert [o["task"] for o in runs["code"].output] == [f"user login / part {i}" for i in (1, 2, 3)]
    assert runs["review"].output["verdict"] == "approve"
    assert runs["request_changes"].status == "skipped"
    assert runs["deploy_dev"].status == "pending"
    assert events_of(instance) == ["pr_created"]

    step_decide(instance_id=instance.id, step_id="merge", decision="approve", actor="test")
    instance = finished(instance, timeout=RUN_TIMEOUT)

    assert instance.status == "completed", instance.error
    runs = steps_of(instance)
    assert runs["merge"].status == runs["deploy_dev"].status == "completed"
    assert instance.result == {
        "tasks": 3,
        "verdict": "approve",
        "merged_sha": runs["merge"].output["sha"],
        "deployed_url": "https://dev.example.test",
    }
    assert events_of(instance) == ["code_deployed", "pr_created"]
    assert tokens_of(instance) > 0


def test_software_development_rejected_review_skips_merge_and_deploy(live):
    apply_example("software-company.yaml")

    instance = run("software-development", {"feature": "checkout bug fix", "parts": 2})

    assert instance.status == "completed", instance.error
    runs = steps_of(instance)
    assert runs["review"].output["verdict"] == "reject"
    assert runs["request_changes"].status == "completed"
    assert runs["merge"].status == runs["deploy_dev"].status == "skipped"  # nobody was asked
    assert instance.result["merged_sha"] is None and instance.result["deployed_url"] is None
    assert events_of(instance) == ["pr_created"]


# The contexts documented in examples/README.md, with the events each run must publish.
BLUEPRINT_RUNS = [
    ("product-ideation", {"feedback": ["checkout is slow", "I want dark mode", "export to CSV"]},
     ["feature_request_created"]),
    ("product-prioritization", {"requests": ["dark mode", "faster checkout"]}, ["work_item_prioritized"]),
    ("code-review", {"pr": 42, "diff": "add login form"}, ["pr_approved"]),
    ("code-review", {"pr": 43, "diff": "introduces a bug"}, ["pr_rejected"]),
    ("customer-support", {"ticket_id": "T-1", "message": "How do I reset my password?"}, ["support_resolved"]),
    ("customer-support", {"ticket_id": "T-2", "message": "The app shows an error on login"},
     ["bug_report_created"]),
    ("incident-response", {"alert": "checkout p99 latency > 2s", "service": "checkout", "severity": "high",
                           "flaky_attempts": 1}, ["incident_resolved"]),
]


@pytest.mark.parametrize("workflow,context,events", BLUEPRINT_RUNS,
                         ids=[f"{w}-{i}" for i, (w, _, _) in enumerate(BLUEPRINT_RUNS)])
def test_blueprint_workflow_runs_with_its_documented_context(live, workflow, context, events):
    apply_example("software-company.yaml")

    instance = run(workflow, context)

    assert instance.status == "completed", instance.error
    assert events_of(instance) == events
    assert tokens_of(instance) > 0
    runs = steps_of(instance)
    if workflow == "customer-support":
        assert instance.result["category"] == ("bug" if "error" in context["message"] else "question")
        assert runs["close_ticket"].status == "completed"
    if workflow == "incident-response":
        assert runs["mitigate"].attempts - runs["mitigate"].attempt_base == 2  # failed once, then retried
        assert instance.result == {"service": "checkout", "mitigated_on_attempt": 2, "paged": True}
    if workflow == "product-ideation":
        assert runs["feature_request"].output["count"] == 3


def test_blueprint_deployment_pipeline_needs_approval_for_production_only(live):
    apply_example("software-company.yaml")
    instance = start("deployment-pipeline", {"version": "1.4.0"})

    step_reaches(instance, "deploy_production", "waiting_approval", timeout=RUN_TIMEOUT)
    # devops is APPROVAL_REQUIRED, but build and deploy_staging say `approval: false`
    assert step(instance, "deploy_staging").status == "completed"

    step_decide(instance_id=instance.id, step_id="deploy_production", decision="approve", actor="test")
    instance = finished(instance, timeout=RUN_TIMEOUT)

    assert instance.status == "completed", instance.error
    assert instance.result == {"version": "1.4.0", "url": "https://production.example.test"}
    assert events_of(instance) == ["deployment_completed"]


def test_blueprint_deployment_pipeline_failed_production_deploy_reverts_staging(live):
    apply_example("software-company.yaml")
    instance = start("deployment-pipeline", {"version": "1.5.0", "fail_production": True})
    step_reaches(instance, "deploy_production", "waiting_approval", timeout=RUN_TIMEOUT)

    step_decide(instance_id=instance.id, step_id="deploy_production", decision="approve", actor="test")
    instance = finished(instance, timeout=RUN_TIMEOUT)

    assert instance.status == "failed"
    assert "failed health checks" in instance.error["message"]
    wait_until(lambda: step(instance, "deploy_staging").status == "compensated", timeout=5,
               message="deploy_staging to be compensated")
    assert events_of(instance) == []
