"""`manage.py dac escalations` and `dac approve` (DESIGN §7.1, §8): the `{"escalations": [...]}`
shape (the API's), filters, deciding as a checked user or as the operator `cli`, and every
refusal as exit 1 with the reason on stderr.

As in test_cli.py: verbs run in-process with `call_command` where only the output matters, and as
a real `manage.py dac` process where the exit code and stderr are the contract."""
import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from governance.escalations.models import Escalation
from governance.escalations.services import escalation_decide
from governance.models import AuditEntry
from orchestration.models import StepRun, WorkflowInstance
from tests.conftest import ROOT
from tests.support.helpers import apply_spec, finished, start, step_reaches, wait_until

pytestmark = pytest.mark.integration

KEYS = {"id", "level", "type", "status", "title", "description", "workflow", "instance", "step", "context",
        "options", "approvers", "min_approvals", "approvals", "assignee", "deadline", "resolution", "resolved_by",
        "resolved_at", "created_at"}


def dac(*args):
    out, err = StringIO(), StringIO()
    call_command("dac", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def dac_json(*args):
    return json.loads(dac(*args, "--json")[0])


def dac_process(live, *args):
    return subprocess.run([sys.executable, "manage.py", "dac", *args], cwd=ROOT, env=live.env,
                          capture_output=True, text=True, timeout=120)


def refused(live, *args, match):
    """A real `manage.py dac` that exits 1 with `match` on stderr and prints nothing on stdout."""
    result = dac_process(live, *args)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert match in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result


def gated(workflow, *, approvers=("tech_lead",), **approval):
    """`ship` waits for approval (it has no dependencies: it parks within start()); `after` reads
    the decision."""
    apply_spec({"id": workflow, "type": "operations", "steps": [
        {"id": "ship", "action": "echo", "with": {"sha": "{{ context.sha }}"},
         "approval": {"approvers": list(approvers), **approval}},
        {"id": "after", "action": "echo", "depends_on": ["ship"],
         "with": {"choice": "{{ steps.ship.decision.option }}"}},
    ]})


def gate_of(instance, step_id="ship"):
    return wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, step_id=step_id).first(),
                      message=f"the escalation of step {step_id}")


def pending(escalation, instance):
    """Nothing moved: still open, no decision, the step still parked."""
    fresh = Escalation.objects.get(id=escalation.id)
    assert fresh.status == "pending" and fresh.resolution == "" and not fresh.decisions.exists()
    assert StepRun.objects.get(instance_id=instance.id, step_id=escalation.step_id).status == "waiting_approval"


@pytest.fixture
def people(live, people):
    """The cast, committed where the live workers see it."""
    return people


@pytest.fixture
def release(people):
    gated("release", type="production_deployment", timeout_minutes=60)
    instance = start("release", {"sha": "abc123"})
    step_reaches(instance, "ship", "waiting_approval")
    return instance


# --- dac escalations -------------------------------------------------------------------------

def test_escalations_json_is_the_api_shape_and_every_filter_narrows_it(people, release):
    gated("budget", approvers=["finance"], type="spend", level="review")
    budget = start("budget", {"sha": "b"})
    second = start("release", {"sha": "def456"})
    escalation_decide(escalation_id=gate_of(second).id, decision="reject", comment="no", actor=people["alice"])
    first_gate, second_gate, budget_gate = gate_of(release), gate_of(second), gate_of(budget)

    listed = dac_json("escalations")
    assert set(listed) == {"escalations"}
    assert [e["id"] for e in listed["escalations"]] == [str(second_gate.id), str(budget_gate.id), str(first_gate.id)]
    for item in listed["escalations"]:
        assert KEYS <= set(item), KEYS - set(item)
    api = APIClient()
    api.force_authenticate(people["erin"])
    assert listed["escalations"] == api.get("/api/v1/escalations/").json()["results"]  # same shape as the API
    shown = listed["escalations"][2]
    assert (shown["level"], shown["type"], shown["status"], shown["workflow"], shown["step"]) == (
        "approval", "production_deployment", "pending", "release", "ship")
    assert (shown["instance"], shown["context"], shown["approvers"]) == (
        str(release.id), {"inputs": {"sha": "abc123"}}, ["tech_lead"])
    assert shown["deadline"] and shown["resolution"] is None and shown["approvals"] == []
    rejected = listed["escalations"][0]
    assert (rejected["status"], rejected["resolution"], rejected["resolved_by"]) == ("resolved", "rejected", "alice")
    assert [(a["user"], a["decision"], a["comment"]) for a in rejected["approvals"]] == [("alice", "reject", "no")]

    def listed_ids(*args):
        return [e["id"] for e in dac_json("escalations", *args)["escalations"]]

    assert listed_ids("--status", "pending") == [str(budget_gate.id), str(first_gate.id)]
    assert listed_ids("--status", "resolved") == [str(second_gate.id)]
    assert listed_ids("--status", "expired") == []
    assert listed_ids("--level", "review") == [str(budget_gate.id)]
    assert listed_ids("--level", "intervention") == []
    assert listed_ids("--type", "spend") == [str(budget_gate.id)]
    assert listed_ids("--workflow", "release") == [str(second_gate.id), str(first_gate.id)]
    assert listed_ids("--workflow", "nothing") == []
    assert listed_ids("--instance", str(second.id)) == [str(second_gate.id)]
    assert listed_ids("--workflow", "release", "--status", "pending") == [str(first_gate.id)]
    assert listed_ids("--limit", "1") == [str(second_gate.id)]


def test_escalations_bad_filters_are_errors(live, people, release):
    with pytest.raises(CommandError, match="not an instance id"):
        dac("escalations", "--instance", "not-a-uuid")
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        dac("escalations", "--limit", "0")
    bad = dac_process(live, "escalations", "--status", "bogus")
    assert bad.returncode == 2 and "invalid choice: 'bogus'" in bad.stderr
    assert all(s in bad.stderr for s in ("pending", "acknowledged", "resolved", "expired"))
    bad = dac_process(live, "escalations", "--level", "bogus")
    assert bad.returncode == 2 and "invalid choice: 'bogus'" in bad.stderr
    assert all(s in bad.stderr for s in ("info", "review", "approval", "intervention"))
    refused(live, "escalations", "--instance", "nope", match="--instance 'nope' is not an instance id")


def test_escalations_text_output_has_a_header_row_and_one_row_each(people, release):
    gate = gate_of(release)
    lines = dac("escalations")[0].splitlines()
    assert lines[0].split() == ["ID", "LEVEL", "STATUS", "WORKFLOW", "STEP", "DEADLINE"]
    assert len(lines) == 2
    row = lines[1].split()
    assert row[:5] == [str(gate.id), "approval", "pending", "release", "ship"]
    assert " ".join(row[5:]) == f"{gate.deadline:%Y-%m-%d %H:%M:%S}"
    only_header = dac("escalations", "--status", "expired")[0].splitlines()
    assert len(only_header) == 1 and only_header[0].startswith("ID")


# --- dac approve -----------------------------------------------------------------------------

def test_approve_an_escalation_id_as_a_group_member_resolves_it_and_the_instance_runs(live, people, release):
    gate = gate_of(release)
    result = dac_process(live, "approve", str(gate.id), "--as", "alice", "--comment", "ship it")
    assert result.returncode == 0, result.stderr
    assert f"escalation {gate.id} resolved: approved" in result.stdout
    gate.refresh_from_db()
    assert (gate.status, gate.resolution, gate.resolved_by) == ("resolved", "approved", "alice")
    (decision,) = gate.decisions.all()
    assert (decision.user_name, decision.decision, decision.comment) == ("alice", "approve", "ship it")
    entry = AuditEntry.objects.get(verb="escalation.decide", target_id=str(gate.id))
    assert (entry.actor_name, entry.actor_id) == ("alice", people["alice"].id)
    instance = finished(release)
    assert instance.status == "completed"
    assert StepRun.objects.get(instance_id=instance.id, step_id="after").output == {"choice": "approve"}


def test_approve_json_prints_the_escalation(people, release):
    gate = gate_of(release)
    printed = dac_json("approve", str(gate.id), "--as", "bob")
    assert KEYS <= set(printed)
    assert (printed["id"], printed["status"], printed["resolution"], printed["resolved_by"]) == (
        str(gate.id), "resolved", "approved", "bob")


def test_approve_an_instance_step_with_an_option(people):
    gated("rollout", options=["ship", "hold", "reject"])
    instance = start("rollout", {"sha": "x"})
    step_reaches(instance, "ship", "waiting_approval")
    out, _ = dac("approve", str(instance.id), "--step", "ship", "--option", "hold", "--comment", "freeze",
                 "--as", "alice")
    assert "resolved: hold" in out
    gate = gate_of(instance)
    assert (gate.status, gate.resolution, gate.resolved_by) == ("resolved", "hold", "alice")
    instance = finished(instance)
    assert instance.status == "completed"
    assert StepRun.objects.get(instance_id=instance.id, step_id="ship").decision["option"] == "hold"
    assert StepRun.objects.get(instance_id=instance.id, step_id="after").output == {"choice": "hold"}


def test_an_unknown_option_names_the_allowed_ones(live, people):
    gated("rollout", options=["ship", "hold", "reject"])
    instance = start("rollout", {"sha": "x"})
    gate = gate_of(instance)
    refused(live, "approve", str(instance.id), "--step", "ship", "--option", "maybe", "--as", "alice",
            match="unknown option 'maybe'")
    with pytest.raises(CommandError, match="approve is not among them"):
        dac("approve", str(gate.id), "--as", "alice")
    pending(gate, instance)


def test_a_non_member_is_refused_with_exit_1_the_reason_on_stderr_and_an_audit_row(live, people, release):
    gate = gate_of(release)
    refused(live, "approve", str(gate.id), "--as", "erin", match="user 'erin' is in none of the approver groups")
    pending(gate, release)
    entry = AuditEntry.objects.get(verb="escalation.refused")
    assert (entry.actor_name, entry.actor_id, entry.target_type, entry.target_id) == (
        "erin", people["erin"].id, "escalation", str(gate.id))
    assert "none of the approver groups" in entry.details["reason"]
    with pytest.raises(CommandError, match="none of the approver groups"):
        dac("approve", str(release.id), "--step", "ship", "--as", "carol")
    assert list(AuditEntry.objects.filter(verb="escalation.refused").values_list("actor_name", flat=True)) == [
        "erin", "carol"]
    pending(gate, release)


def test_as_an_unknown_or_inactive_user_is_exit_1(live, people, release):
    gate = gate_of(release)
    refused(live, "approve", str(gate.id), "--as", "nobody", match="no active user 'nobody'")
    people["bob"].is_active = False
    people["bob"].save()
    with pytest.raises(CommandError, match="no active user 'bob'"):
        dac("approve", str(gate.id), "--as", "bob")
    pending(gate, release)


def test_approving_a_resolved_escalation_is_exit_1(live, people, release):
    gate = gate_of(release)
    dac("approve", str(gate.id), "--reject", "--comment", "not now", "--as", "alice")
    gate.refresh_from_db()
    assert (gate.status, gate.resolution) == ("resolved", "rejected")
    assert finished(release).status == "failed"
    refused(live, "approve", str(gate.id), "--as", "bob", match="is resolved as rejected by alice")
    refused(live, "approve", str(release.id), "--step", "ship", match="not waiting for approval")
    assert gate.decisions.count() == 1


@pytest.mark.parametrize("comment", [(), ("--comment", ""), ("--comment", "   ")])
def test_rejecting_without_a_reason_is_exit_1_and_changes_nothing(live, people, release, comment):
    gate = gate_of(release)
    audits = AuditEntry.objects.count()
    refused(live, "approve", str(gate.id), "--reject", *comment, "--as", "alice", match="a rejection needs a reason")
    refused(live, "approve", str(release.id), "--step", "ship", "--reject", *comment,
            match="dac approve: --comment TEXT")
    pending(gate, release)
    assert AuditEntry.objects.count() == audits


@pytest.mark.parametrize("flags", [("--reject", "--option", "x"), ("--reject", "--acknowledge"),
                                   ("--option", "x", "--acknowledge")])
def test_reject_option_and_acknowledge_exclude_each_other(live, people, release, flags):
    gate = gate_of(release)
    result = dac_process(live, "approve", str(gate.id), *flags, "--as", "alice")
    assert result.returncode == 2, result.stderr
    assert "not allowed with argument" in result.stderr
    with pytest.raises(CommandError, match="not allowed with argument"):
        dac("approve", str(gate.id), *flags, "--as", "alice")
    pending(gate, release)


def test_run_as_alice_records_her_and_she_may_not_approve_her_own_instance(live, people):
    gated("release")
    printed = json.loads(dac("run", "release", "--context", '{"sha": "own"}', "--as", "alice")[0])
    assert set(printed) == {"id", "workflow", "status"} and printed["workflow"] == "release"
    status = dac_json("status", printed["id"])
    assert status["created_by"] == "alice"
    instance = WorkflowInstance.objects.get(id=printed["id"])
    step_reaches(instance, "ship", "waiting_approval")
    gate = gate_of(instance)
    refused(live, "approve", printed["id"], "--step", "ship", "--as", "alice", match="started this instance")
    refused(live, "approve", str(gate.id), "--as", "alice", match="started this instance")
    pending(gate, instance)
    assert AuditEntry.objects.filter(verb="escalation.refused", actor_name="alice").count() == 2
    dac("approve", str(gate.id), "--as", "bob")
    assert finished(instance).status == "completed"


def test_without_as_the_operator_cli_decides(people, release):
    gate = gate_of(release)
    out, _ = dac("approve", str(gate.id), "--comment", "from the shell")
    assert "resolved: approved" in out
    gate.refresh_from_db()
    assert (gate.status, gate.resolved_by) == ("resolved", "cli")
    assert AuditEntry.objects.get(verb="escalation.decide", target_id=str(gate.id)).actor_name == "cli"
    assert finished(release).status == "completed"


def test_an_instance_id_alone_decides_its_one_open_gate(live, people):
    apply_spec({"id": "pair", "steps": [
        {"id": "one", "action": "echo", "with": {"n": 1}, "approval": {"approvers": ["tech_lead"]}},
        {"id": "two", "action": "echo", "with": {"n": 2}, "approval": {"approvers": ["tech_lead"]}},
    ]})
    instance = start("pair")
    one, two = gate_of(instance, "one"), gate_of(instance, "two")
    refused(live, "approve", str(instance.id), "--as", "alice", match="give --step or an escalation id")
    with pytest.raises(CommandError, match="one, two|two, one"):
        dac("approve", str(instance.id), "--as", "alice")
    dac("approve", str(instance.id), "--step", "one", "--as", "alice")
    out, _ = dac("approve", str(instance.id), "--as", "bob")  # now only `two` is open
    assert f"escalation {two.id} resolved: approved" in out
    one.refresh_from_db()
    assert (one.resolved_by, Escalation.objects.get(id=two.id).resolved_by) == ("alice", "bob")
    assert finished(instance).status == "completed"


def test_unknown_ids_and_steps_are_clean_errors(live, people, release):
    import uuid

    refused(live, "approve", "not-an-id", match="'not-an-id' is neither an escalation nor an instance id")
    missing = str(uuid.uuid4())
    with pytest.raises(CommandError, match="neither an escalation nor an instance id"):
        dac("approve", missing)
    with pytest.raises(CommandError, match=f"instance '{missing}' not found"):
        dac("approve", missing, "--step", "ship")
    with pytest.raises(CommandError, match="has no step 'nope'"):
        dac("approve", str(release.id), "--step", "nope")
    with pytest.raises(CommandError, match="not found"):
        dac("approve", "not-an-id", "--step", "ship")
    pending(gate_of(release), release)


def test_quorum_from_the_cli_counts_each_person_once(live, people):
    gated("quorum", min_approvals=2)
    instance = start("quorum", {"sha": "q"})
    gate = gate_of(instance)
    out, _ = dac("approve", str(gate.id), "--as", "alice")
    assert "approve recorded, pending (1/2 approvals" in out
    refused(live, "approve", str(gate.id), "--as", "alice", match="already decided")
    printed = dac_json("approve", str(gate.id), "--as", "dave")
    assert (printed["status"], printed["resolution"]) == ("resolved", "approved")
    assert [a["user"] for a in printed["approvals"]] == ["alice", "dave"]
    assert finished(instance).status == "completed"


def test_acknowledge_keeps_the_gate_open_and_assigns_it(people, release):
    gate = gate_of(release)
    out, _ = dac("approve", str(gate.id), "--acknowledge", "--as", "alice")
    assert "acknowledged" in out
    gate.refresh_from_db()
    assert (gate.status, gate.assignee.username) == ("acknowledged", "alice")
    assert StepRun.objects.get(instance_id=release.id, step_id="ship").status == "waiting_approval"
    assert [e["status"] for e in dac_json("escalations", "--status", "acknowledged")["escalations"]] == [
        "acknowledged"]


def test_a_notice_is_acknowledged_not_approved(live, people):
    notice = Escalation.objects.create(level="review", type="notify_cost", gate="none", title="cost is high",
                                       workflow="budget", approvers=["tech_lead"])
    refused(live, "approve", str(notice.id), "--as", "alice", match="it can only be acknowledged")
    out, _ = dac("approve", str(notice.id), "--acknowledge", "--comment", "seen", "--as", "alice")
    assert f"escalation {notice.id} resolved: acknowledged" in out
    notice.refresh_from_db()
    assert (notice.status, notice.resolution, notice.resolved_by) == ("resolved", "acknowledged", "alice")
