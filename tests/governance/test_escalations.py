"""Escalations behind approval gates (DESIGN §7.1), decided through the one governance service,
with real workers running the steps."""
import pytest

from governance.escalations.models import Escalation
from governance.escalations.proof import digest
from governance.escalations.services import escalation_decide, step_decide
from governance.models import AuditEntry
from orchestration.engine import Conflict, InvalidRequest, NotFound
from orchestration.events.models import Event
from orchestration.models import WorkflowInstance
from tests.support.helpers import apply_spec, finished, start, step, step_reaches, wait_until


def gate_of(instance, step_id="ship"):
    return wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, step_id=step_id,
                                                        status="pending").first(), message="the gate's escalation")


def spec(approval, *, after=None, with_=None):
    return {"id": "release", "type": "operations", "steps": [
        {"id": "build", "action": "echo", "with": {"sha": "abc123"}},
        {"id": "ship", "action": "echo", "depends_on": ["build"], "approval": approval,
         "with": with_ or {"sha": "{{ steps.build.output.sha }}"}},
        *(after or []),
    ]}


def test_a_gate_opens_an_escalation_showing_the_resolved_inputs_and_an_approver_resumes_it(live, people):
    apply_spec(spec({"type": "production_deployment", "approvers": ["tech_lead"]}))
    instance = start("release", actor=people["erin"])
    step_reaches(instance, "ship", "waiting_approval")
    gate = gate_of(instance)
    assert (gate.level, gate.type, gate.gate, gate.workflow) == ("approval", "production_deployment", "step", "release")
    assert (gate.approvers, gate.min_approvals, gate.options) == (["tech_lead"], 1, ["approve", "reject"])
    assert gate.context == {"inputs": {"sha": "abc123"}}
    assert Event.objects.filter(event_type="governance.escalation.created", payload__escalation=str(gate.id)).exists()

    escalation_decide(escalation_id=gate.id, decision="approve", comment="go", actor=people["alice"])
    instance = finished(instance)
    assert instance.status == "completed"
    gate.refresh_from_db()
    assert (gate.status, gate.resolution, gate.resolved_by) == ("resolved", "approved", "alice")
    (decision,) = gate.decisions.all()
    assert decision.shown_sha256 == digest({"inputs": {"sha": "abc123"}})
    assert step(instance, "ship").decision == {"option": "approve", "by": "alice", "comment": "go",
                                                "escalation": str(gate.id),
                                                "inputs_sha256": digest({"sha": "abc123"})}
    assert Event.objects.filter(event_type="governance.escalation.resolved", payload__escalation=str(gate.id),
                                payload__resolution="approved").exists()


def test_quorum_needs_distinct_approvers_and_one_rejection_vetoes(live, people):
    apply_spec(spec({"approvers": ["tech_lead", "finance"], "min_approvals": 2}))
    first, second = start("release"), start("release")
    one, two = gate_of(first), gate_of(second)

    escalation_decide(escalation_id=one.id, decision="approve", actor=people["alice"])
    with pytest.raises(Conflict, match="already decided"):
        escalation_decide(escalation_id=one.id, decision="approve", actor=people["alice"])
    one.refresh_from_db()
    assert one.status == "pending" and step(first, "ship").status == "waiting_approval"
    escalation_decide(escalation_id=one.id, decision="approve", actor=people["carol"])
    assert finished(first).status == "completed"

    escalation_decide(escalation_id=two.id, decision="approve", actor=people["alice"])
    escalation_decide(escalation_id=two.id, decision="reject", comment="not this week", actor=people["bob"])
    second = finished(second)
    assert second.status == "failed"
    assert step(second, "ship").error == {"type": "Rejected", "message": "rejected by bob: not this week"}
    two.refresh_from_db()
    assert (two.status, two.resolution) == ("resolved", "rejected")


def test_who_may_decide_never_the_starter_and_every_refusal_is_audited(live, people, settings):
    apply_spec(spec({"approvers": ["tech_lead"]}))
    instance = start("release", actor=people["alice"])
    gate = gate_of(instance)
    for who, reason in (("alice", "started this instance"), ("carol", "none of the approver groups"),
                        ("erin", "none of the approver groups")):
        with pytest.raises(Exception, match=reason) as refused:
            escalation_decide(escalation_id=gate.id, decision="approve", actor=people[who])
        assert refused.value.http_status == 403
    assert list(AuditEntry.objects.filter(verb="escalation.refused").values_list("actor_name", flat=True)) == [
        "alice", "carol", "erin"]
    gate.refresh_from_db()
    assert gate.status == "pending" and not gate.decisions.exists()

    settings.DAC_ALLOW_SELF_APPROVAL = True
    escalation_decide(escalation_id=gate.id, decision="approve", actor=people["alice"])
    assert finished(instance).status == "completed"


def test_decide_any_permission_and_the_assignee_may_decide_outside_the_groups(live, people):
    apply_spec(spec({"approvers": ["tech_lead"]}))
    by_permission, by_assignment = start("release"), start("release")
    escalation_decide(escalation_id=gate_of(by_permission).id, decision="approve", actor=people["dave"])
    assert finished(by_permission).status == "completed"

    from governance.escalations.services import escalation_assign

    gate = gate_of(by_assignment)
    escalation_assign(escalation_id=gate.id, user="erin", comment="erin owns this release", actor=people["bob"])
    escalation_decide(escalation_id=gate.id, decision="approve", actor=people["erin"])
    assert finished(by_assignment).status == "completed"
    assert AuditEntry.objects.get(verb="escalation.assign").details == {"assignee": "erin",
                                                                        "comment": "erin owns this release"}


def test_options_let_the_step_run_and_descendants_branch_on_the_decision(live, people):
    after = [{"id": "announce", "action": "echo", "depends_on": ["ship"],
              "when": "{{ steps.ship.decision.option == 'ship' }}"},
             {"id": "park", "action": "echo", "depends_on": ["ship"],
              "with": {"why": "{{ steps.ship.decision.comment }}"},
              "when": "{{ steps.ship.decision.option == 'hold' }}"}]
    apply_spec(spec({"approvers": ["tech_lead"], "options": ["ship", "hold", "reject"]}, after=after,
                    with_={"choice": "{{ steps.ship.decision.option }}"}))
    instance = start("release")
    gate = gate_of(instance)
    with pytest.raises(InvalidRequest, match="unknown option 'maybe'"):
        escalation_decide(escalation_id=gate.id, decision="maybe", actor=people["alice"])
    with pytest.raises(InvalidRequest, match="approve is not among them"):
        escalation_decide(escalation_id=gate.id, decision="approve", actor=people["alice"])
    escalation_decide(escalation_id=gate.id, decision="hold", comment="after the freeze", actor=people["alice"])
    instance = finished(instance)
    assert instance.status == "completed"
    assert step(instance, "ship").output == {"choice": "hold"}  # the step reads its own decision
    assert (step(instance, "announce").status, step(instance, "park").status) == ("skipped", "completed")
    assert step(instance, "park").output == {"why": "after the freeze"}
    gate.refresh_from_db()
    assert gate.resolution == "hold"


def test_a_step_whose_inputs_changed_after_approval_refuses_to_run(live, people):
    from orchestration.context.services import context_set

    context_set(scope="global", key="release-target", value="blue", actor="test")
    apply_spec(spec({"approvers": ["tech_lead"]}, with_={"target": "{{ shared['release-target'] }}"}))
    instance = start("release")
    gate = gate_of(instance)
    assert gate.context == {"inputs": {"target": "blue"}}
    context_set(scope="global", key="release-target", value="green", actor="test")  # not what alice saw
    escalation_decide(escalation_id=gate.id, decision="approve", actor=people["alice"])
    instance = finished(instance)
    assert instance.status == "failed"
    assert step(instance, "ship").error["type"] == "ApprovalProofMismatch"


def test_deciding_a_closed_or_unknown_escalation_changes_nothing(live, people):
    apply_spec(spec({"approvers": ["tech_lead"]}))
    instance = start("release")
    gate = gate_of(instance)
    escalation_decide(escalation_id=gate.id, decision="reject", comment="no", actor=people["alice"])
    with pytest.raises(Conflict, match="is resolved as rejected by alice"):
        escalation_decide(escalation_id=gate.id, decision="approve", actor=people["bob"])
    with pytest.raises(NotFound):
        escalation_decide(escalation_id="not-an-id", decision="approve", actor=people["bob"])
    with pytest.raises(Conflict, match="not waiting for approval"):
        step_decide(instance_id=instance.id, step_id="build", decision="approve", actor=people["bob"])
    assert gate.decisions.count() == 1


def test_terminating_an_instance_expires_its_open_gate(live, people):
    from orchestration import engine

    apply_spec(spec({"approvers": ["tech_lead"]}))
    instance = start("release")
    gate = gate_of(instance)
    engine.instance_terminate(instance_id=instance.id, actor="test")
    gate.refresh_from_db()
    assert (gate.status, gate.closed_reason) == ("expired", "the instance terminated")
    assert WorkflowInstance.objects.get(id=instance.id).status == "terminated"
    assert Event.objects.filter(event_type="governance.escalation.expired", payload__escalation=str(gate.id)).exists()


def test_acknowledging_marks_a_gate_looked_at_and_the_same_person_may_still_decide(live, people):
    apply_spec(spec({"approvers": ["tech_lead"]}))
    instance = start("release")
    gate = gate_of(instance)
    escalation_decide(escalation_id=gate.id, decision="acknowledge", actor=people["alice"])
    gate.refresh_from_db()
    assert (gate.status, gate.assignee_id) == ("acknowledged", people["alice"].id)
    with pytest.raises(Conflict, match="already acknowledged"):
        escalation_decide(escalation_id=gate.id, decision="acknowledge", actor=people["alice"])
    escalation_decide(escalation_id=gate.id, decision="approve", comment="checked", actor=people["alice"])
    assert finished(instance).status == "completed"
    assert [(d.user_name, d.decision) for d in gate.decisions.all()] == [("alice", "approve")]


@pytest.mark.parametrize("comment", [None, "", "  \n "])
def test_a_rejection_needs_a_reason_and_without_one_nothing_changes(people, comment):
    """Every human path (API, CLI, console) decides through this service: the rule lives here."""
    apply_spec({"id": "reasoned", "steps": [{"id": "ship", "action": "echo", "approval": {
        "approvers": ["tech_lead"], "options": ["ship", "hold", "reject"]}}]})
    instance = start("reasoned")  # `ship` has no dependency: it parks within start()
    gate = gate_of(instance)
    audits = AuditEntry.objects.count()
    for decide in (lambda: escalation_decide(escalation_id=gate.id, decision="reject", comment=comment,
                                             actor=people["alice"]),
                   lambda: escalation_decide(escalation_id=gate.id, decision="rejected", comment=comment,
                                             actor=people["alice"]),
                   lambda: step_decide(instance_id=instance.id, step_id="ship", decision="reject", comment=comment,
                                       actor=people["alice"])):
        with pytest.raises(InvalidRequest, match="a rejection needs a reason") as refused:
            decide()
        assert refused.value.details == {"field": "comment"} and refused.value.http_status == 400
    gate.refresh_from_db()
    assert (gate.status, gate.resolution, gate.decisions.count()) == ("pending", "", 0)
    assert step(instance, "ship").status == "waiting_approval"
    assert AuditEntry.objects.count() == audits
    # an option that lets the step run needs no reason; a reasoned rejection vetoes as before
    escalation_decide(escalation_id=gate.id, decision="acknowledge", comment=comment, actor=people["bob"])
    escalation_decide(escalation_id=gate.id, decision="reject", comment=" not today ", actor=people["alice"])
    gate.refresh_from_db()
    assert (gate.status, gate.resolution) == ("resolved", "rejected")
    assert step(instance, "ship").error == {"type": "Rejected", "message": "rejected by alice: not today"}
