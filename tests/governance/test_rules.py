"""A blueprint's governance (DESIGN §7.2): approval_required, auto_approve, first-match rules,
and coordination.escalation conditions, with real workers."""
import pytest
import yaml

from governance.escalations.models import Escalation
from governance.escalations.services import escalation_decide
from governance.models import AuditEntry
from registry.spec import SpecInvalid
from tests.support.helpers import apply_yaml, finished, start, step, wait_until


def blueprint(governance=None, escalation=None, steps=None):
    return yaml.safe_dump({
        "name": "governed",
        "workflows": [{"id": "deploy", "type": "operations", "steps": steps or [
            {"id": "build", "action": "echo", "with": {"v": 1}, "compensate": {"action": "noop"}},
            {"id": "release", "action": "echo", "with": {"amount": "{{ context.amount }}"}, "depends_on": ["build"],
             "operation": "production_deployment"},
        ]}],
        "coordination": {"escalation": escalation or []},
        "governance": governance or {},
    }, sort_keys=False)


def escalations(instance):
    return list(Escalation.objects.filter(instance_id=instance.id).order_by("created_at"))


def open_gate(instance):
    return wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, status="pending",
                                                        level__in=["approval", "intervention"]).first(),
                      message="an open gate")


def test_approval_required_gates_a_step_by_its_operation_with_the_blueprints_approvers(live, people):
    apply_yaml(blueprint({"approval_required": ["production_deployment"], "approvers": ["tech_lead"]}))
    instance = start("deploy", {"amount": 5})
    gate = open_gate(instance)
    assert (gate.type, gate.step_id, gate.approvers) == ("production_deployment", "release", ["tech_lead"])
    escalation_decide(escalation_id=gate.id, decision="approve", actor=people["bob"])
    assert finished(instance).status == "completed"


def test_auto_approve_resolves_by_policy_but_approval_required_wins(live, people, settings):
    from governance.notifications.models import NotificationDelivery

    settings.DAC_NOTIFY_EMAILS = ["oncall@example.org"]  # a notice for every escalation a human must see
    apply_yaml(blueprint({"auto_approve": ["production_deployment", "docs"]}, steps=[
        {"id": "docs", "action": "echo", "operation": "docs", "approval": True},
        {"id": "release", "action": "echo", "operation": "production_deployment", "approval": True,
         "depends_on": ["docs"]},
    ]))
    instance = finished(start("deploy"))
    assert instance.status == "completed"
    (docs_gate, release_gate) = escalations(instance)
    assert (docs_gate.status, docs_gate.resolution, docs_gate.resolved_by) == (
        "resolved", "approved", "policy:auto_approve")
    assert step(instance, "docs").decision["by"] == "policy:auto_approve"
    assert AuditEntry.objects.filter(verb="escalation.resolve", actor_name="policy:auto_approve").count() == 2

    # The gate opens inside start(), in this process, where the notification setting holds.
    apply_yaml(blueprint({"auto_approve": ["production_deployment"], "approval_required": ["production_deployment"]},
                         steps=[{"id": "release", "action": "echo", "operation": "production_deployment"}]))
    assert not NotificationDelivery.objects.exists()  # decided by policy at once: nobody is paged
    gated = start("deploy", {"amount": 1})
    assert open_gate(gated).step_id == "release"
    assert list(NotificationDelivery.objects.values_list("event", "target")) == [("created", "oncall@example.org")]


def test_rules_first_match_wins(live, people):
    apply_yaml(blueprint({"rules": [
        {"name": "big-spend", "when": "context.amount > 100", "action": "require_approval", "approvers": ["finance"],
         "min_approvals": 1},
        {"name": "routine", "when": "production_deployment", "action": "auto_approve"},
    ]}, steps=[{"id": "release", "action": "echo", "operation": "production_deployment", "approval": True}]))
    big, small = start("deploy", {"amount": 500}), start("deploy", {"amount": 5})
    gate = open_gate(big)
    assert (gate.approvers, gate.context["reasons"]) == (["finance"], ["rule big-spend: context.amount > 100"])
    assert finished(small).status == "completed"
    assert escalations(small)[0].resolved_by == "policy:auto_approve"
    escalation_decide(escalation_id=gate.id, decision="approve", actor=people["carol"])
    assert finished(big).status == "completed"


CONDITIONS = [
    {"condition": "production_deployment", "action": "require_approval", "approvers": ["tech_lead"]},
    {"condition": "workflow_duration >= 0s", "action": "notify_team_lead"},
]


def test_a_require_approval_condition_holds_the_instance_before_its_step_and_approve_continues(live, people):
    apply_yaml(blueprint(escalation=CONDITIONS))
    instance = start("deploy", {"amount": 1})
    gate = open_gate(instance)
    assert (gate.gate, gate.level, gate.type, gate.step_id) == ("instance", "approval", "require_approval", "release")
    assert step(instance, "release").status == "pending"  # held back: not even ready
    wait_until(lambda: step(instance, "build").status == "completed", message="build")
    escalation_decide(escalation_id=gate.id, decision="approve", actor=people["alice"])
    instance = finished(instance)
    assert instance.status == "completed"
    # Each condition fired once for the instance, however many steps ran.
    assert sorted((e.type, e.level) for e in escalations(instance)) == [
        ("notify_team_lead", "review"), ("require_approval", "approval")]
    notice = next(e for e in escalations(instance) if e.level == "review")
    assert notice.gate == "none" and notice.status == "pending"  # a notice never stopped anything


def test_rejecting_an_instance_gate_fails_the_instance_and_compensates(live, people):
    apply_yaml(blueprint(escalation=CONDITIONS))
    instance = start("deploy", {"amount": 1})
    gate = open_gate(instance)
    escalation_decide(escalation_id=gate.id, decision="reject", comment="freeze", actor=people["alice"])
    instance = finished(instance)
    assert instance.status == "failed"
    assert instance.error == {"type": "Rejected", "message": "rejected by alice: freeze"}
    assert step(instance, "build").status == "compensated"
    assert step(instance, "release").status == "cancelled"


@pytest.mark.parametrize("section, field, message", [
    ({"coordination": {"escalation": [{"condition": "cost_estimate > > $5", "action": "require_approval"}]}},
     "coordination.escalation[0].condition", "is not a valid condition: unexpected '>'"),
    ({"coordination": {"escalation": [{"condition": "true", "action": "page_someone"}]}},
     "coordination.escalation[0].action", "must be require_approval or notify_<who>"),
    ({"governance": {"rules": [{"when": "foo.bar > 1", "action": "auto_approve"}]}},
     "governance.rules[0].when", "is not a valid condition"),
    ({"governance": {"rules": [{"when": "true", "action": "approve_all"}]}},
     "governance.rules[0].action", "must be one of auto_approve, require_approval, escalate"),
    ({"governance": {"notifications": [{"channel": "webhook", "url": "ftp://x", "levels": ["urgent"]}]}},
     "governance.notifications[0].levels", "'urgent' is not a level"),
])
def test_bad_governance_sections_are_rejected_naming_the_field(db, section, field, message):
    doc = {"name": "bad", "workflows": [{"id": "w", "steps": [{"id": "a", "action": "noop"}]}], **section}
    with pytest.raises(SpecInvalid) as invalid:
        apply_yaml(yaml.safe_dump(doc))
    errors = {e.field: e.message for e in invalid.value.errors}
    assert field in errors and message in errors[field], errors
    assert not Escalation.objects.exists()


def test_min_approvals_more_than_the_group_is_an_error_naming_the_step(db, people):
    doc = {"id": "w", "steps": [{"id": "a", "action": "noop", "approval": {"approvers": ["tech_lead"],
                                                                          "min_approvals": 3}}]}
    with pytest.raises(SpecInvalid) as invalid:
        apply_yaml(yaml.safe_dump(doc))
    (error,) = invalid.value.errors
    assert (error.step, error.field) == ("a", "approval.min_approvals")
    assert "min_approvals 3 is more than the 2 active member(s) of tech_lead" in error.message
    doc["steps"][0]["approval"]["min_approvals"] = 2
    apply_yaml(yaml.safe_dump(doc))  # two members can reach two approvals


def test_the_sweep_evaluates_time_conditions_of_running_instances_once(live, people):
    from governance.escalations.deadlines import conditions_sweep

    apply_yaml(blueprint(escalation=[{"condition": "workflow_duration > 1s", "action": "notify_team_lead",
                                      "level": "intervention"}],
                         steps=[{"id": "slow", "action": "sleep", "with": {"seconds": 4}}]))
    instance = start("deploy")
    wait_until(lambda: step(instance, "slow").status == "running", message="the slow step to run")
    wait_until(lambda: conditions_sweep() == 1, timeout=10, interval=0.2, message="the sweep to fire")
    assert conditions_sweep() == 0  # at most once per instance
    (notice,) = escalations(instance)
    assert (notice.level, notice.gate, notice.type) == ("intervention", "none", "notify_team_lead")
    assert notice.context["facts"]["workflow_duration"]
    assert finished(instance).status == "completed"
