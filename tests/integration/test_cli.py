"""`manage.py dac`: the JSON shapes of DESIGN §8, exit codes and errors on stderr."""
import json
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from governance.models import AuditEntry
from tests.conftest import ROOT
from tests.support.helpers import step_reaches, wait_until

pytestmark = pytest.mark.integration

FLOW = """
id: cli-flow
steps:
  - {id: a, action: echo, with: {x: "{{ context.x }}"}}
  - {id: gate, action: echo, with: {y: "{{ steps.a.output.x }}"}, depends_on: [a], approval: true}
"""
BROKEN = """
id: cli-broken
steps:
  - {id: a, action: nope}
  - {id: b, action: noop, depends_on: [c]}
"""


def dac(*args):
    out, err = StringIO(), StringIO()
    call_command("dac", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def dac_process(live, *args):
    return subprocess.run([sys.executable, "manage.py", "dac", *args], cwd=ROOT, env=live.env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    return path


def test_validate_json_reports_valid_and_invalid_files(live, tmp_path, flow_file):
    out, _ = dac("validate", str(flow_file), "--json")
    assert json.loads(out) == {"valid": True, "errors": [], "warnings": []}
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    with pytest.raises(SystemExit) as exited:
        out, _ = dac("validate", str(broken), "--json")
    assert exited.value.code == 1


def test_validate_json_names_file_step_and_field(live, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = dac_process(live, "validate", str(broken), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert {(e["file"], e["step"], e["field"]) for e in report["errors"]} == {
        (str(broken), "a", "action"), (str(broken), "b", "depends_on")}


def test_apply_twice_then_run_wait_prints_the_result(live, flow_file):
    out, _ = dac("apply", str(flow_file))
    assert "workflow cli-flow: created v1" in out
    out, _ = dac("apply", str(flow_file))
    assert "unchanged (v1)" in out
    result = dac_process(live, "run", "cli-flow", "--context", '{"x": 5}', "--wait", "--timeout", "2")
    assert result.returncode == 2  # the gate parks it: --timeout elapses
    summary = json.loads(result.stdout)
    assert summary["status"] == "waiting"
    carol = User.objects.create_user("carol", is_staff=True)
    carol.groups.add(Group.objects.get_or_create(name="approvers")[0])
    dac("approve", summary["id"], "--step", "gate", "--comment", "ok", "--as", "carol")
    assert AuditEntry.objects.filter(verb="escalation.decide", actor_name="carol").exists()
    wait_until(lambda: json.loads(dac("status", summary["id"], "--json")[0])["status"] == "completed")
    status = json.loads(dac("status", summary["id"], "--json")[0])
    assert set(status) == {"id", "workflow", "version", "status", "priority", "result", "error", "parent", "children",
                           "trigger", "correlation_id", "created_by", "created_at", "started_at", "finished_at",
                           "steps"}
    assert (status["trigger"], status["correlation_id"], status["children"]) == ({"type": "manual"}, summary["id"], [])
    assert status["result"] == {"gate": {"y": 5}}
    assert [s["step_id"] for s in status["steps"]] == ["a", "gate"]
    assert set(status["steps"][0]) == {"step_id", "status", "attempts", "started_at", "finished_at", "output", "error"}
    assert status["steps"][0]["attempts"] == 1


def test_run_wait_exit_codes_follow_the_outcome(live, tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("id: cli-ok\nsteps: [{id: a, action: echo, with: {v: 1}}]\n")
    dac("apply", str(path))
    ok = dac_process(live, "run", "cli-ok", "--wait")
    assert ok.returncode == 0
    assert json.loads(ok.stdout) == {"id": json.loads(ok.stdout)["id"], "workflow": "cli-ok", "status": "completed",
                                     "result": {"a": {"v": 1}}}
    path.write_text("id: cli-bad\nsteps: [{id: a, action: fail}]\n")
    dac("apply", str(path))
    bad = dac_process(live, "run", "cli-bad", "--wait")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["status"] == "failed"


def test_errors_go_to_stderr_with_a_non_zero_exit(live):
    result = dac_process(live, "run", "no-such-workflow")
    assert result.returncode != 0
    assert "'no-such-workflow' is not registered" in result.stderr
    assert result.stdout == ""
    result = dac_process(live, "run", "no-such-workflow", "--context", "{bad json")
    assert result.returncode != 0 and "--context is not valid JSON" in result.stderr


def test_apply_of_a_broken_file_registers_nothing(live, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    with pytest.raises(CommandError, match="nothing was registered"):
        dac("apply", str(broken))
    from registry.models import WorkflowDefinition

    assert not WorkflowDefinition.objects.exists()


def test_pause_resume_terminate_and_retry_from_the_cli(live, flow_file):
    dac("apply", str(flow_file))
    instance_id = json.loads(dac("run", "cli-flow", "--context", '{"x": 1}')[0])["id"]
    from orchestration.models import WorkflowInstance

    instance = WorkflowInstance.objects.get(id=instance_id)
    step_reaches(instance, "gate", "waiting_approval")
    assert json.loads(dac("pause", instance_id, "--json")[0])["status"] == "paused"
    assert json.loads(dac("resume", instance_id, "--json")[0])["status"] in ("running", "waiting")
    with pytest.raises(CommandError, match="cannot retry"):
        dac("retry", instance_id)
    assert json.loads(dac("terminate", instance_id, "--json")[0])["status"] == "terminated"
    with pytest.raises(CommandError, match="cannot resume"):
        dac("resume", instance_id)


def test_audit_verify_detects_an_edited_entry(live, flow_file):
    dac("apply", str(flow_file))
    dac("run", "cli-flow")
    assert "intact" in dac("audit", "verify")[0]
    entry = AuditEntry.objects.order_by("id").first()
    AuditEntry.objects.filter(id=entry.id).update(actor_name="mallory")
    with pytest.raises(CommandError, match="NOT intact"):
        dac("audit", "verify")


@pytest.mark.parametrize("verb", ["pause", "resume", "terminate", "retry"])
def test_lifecycle_verbs_on_a_malformed_id_are_clean_errors(live, verb):
    result = dac_process(live, verb, "not-a-uuid")
    assert result.returncode != 0
    assert "instance 'not-a-uuid' not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_wait_prints_id_workflow_and_status_and_takes_priority_and_as(live, flow_file):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("alice")
    dac("apply", str(flow_file))
    printed = json.loads(dac("run", "cli-flow", "--priority", "high", "--as", "alice")[0])
    assert set(printed) == {"id", "workflow", "status"} and printed["workflow"] == "cli-flow"
    status = json.loads(dac("status", printed["id"], "--json")[0])
    assert (status["priority"], status["created_by"]) == (7, "alice")
    with pytest.raises(CommandError, match="--priority must be"):
        dac("run", "cli-flow", "--priority", "urgent")


def test_foreach_over_context_items_reads_the_key_not_the_dict_method(live, tmp_path):
    path = tmp_path / "items.yaml"
    path.write_text("""
id: cli-items
steps:
  - {id: each, action: echo, foreach: "{{ context.items }}", with: {n: "{{ item }}", k: "{{ context.keys }}"}}
  - {id: sum, action: echo, depends_on: [each], with: {values: "{{ context.values }}", got: "{{ context.get }}",
                                                       up: "{{ context.update }}"}}
""")
    dac("apply", str(path))
    context = json.dumps({"items": [1, 2, 3], "keys": "k", "values": [9], "get": "g", "update": True})
    result = dac_process(live, "run", "cli-items", "--context", context, "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["result"] == {"sum": {"values": [9], "got": "g", "up": True}}
    from orchestration.models import StepRun

    assert StepRun.objects.get(step_id="each").output == [{"n": 1, "k": "k"}, {"n": 2, "k": "k"}, {"n": 3, "k": "k"}]


def test_status_without_an_id_filters_and_prints_an_instances_object(live, tmp_path):
    path = tmp_path / "pair.yaml"
    path.write_text("""
name: cli-pair
workflows:
  - {id: cli-kid, steps: [{id: a, action: echo, with: {v: 1}}]}
  - {id: cli-mum, steps: [{id: call, spawn: {workflow: cli-kid}}]}
""")
    dac("apply", str(path))
    mum = json.loads(dac("run", "cli-mum")[0])["id"]
    from orchestration.models import WorkflowInstance

    wait_until(lambda: WorkflowInstance.objects.filter(id=mum, status="completed").exists())
    listed = json.loads(dac("status", "--json")[0])
    assert set(listed) == {"instances"} and len(listed["instances"]) == 2
    assert "steps" not in listed["instances"][0]
    kids = json.loads(dac("status", "--parent", mum, "--json")[0])["instances"]
    assert [(k["workflow"], k["parent"], k["trigger"]["type"], k["correlation_id"]) for k in kids] == [
        ("cli-kid", mum, "spawn", mum)]
    assert json.loads(dac("status", mum, "--json")[0])["children"] == [kids[0]["id"]]
    assert json.loads(dac("status", "--workflow", "cli-kid", "--status", "completed", "--json")[0])["instances"] == kids
    assert json.loads(dac("status", "--status", "failed", "--json")[0]) == {"instances": []}
    assert len(json.loads(dac("status", "--limit", "1", "--json")[0])["instances"]) == 1


def test_emit_and_events_print_the_shapes_of_section_8(live, tmp_path):
    path = tmp_path / "listener.yaml"
    path.write_text("id: cli-listener\ntriggers: [{type: event, event: cli.ping}]\nsteps: [{id: a, action: noop}]\n")
    dac("apply", str(path))
    result = dac_process(live, "emit", "cli.ping", "--payload", '{"n": 1}', "--priority", "high",
                         "--correlation-id", "corr-9", "--ttl", "600", "--json")
    assert result.returncode == 0, result.stderr
    emitted = json.loads(result.stdout)
    assert set(emitted) == {"event_id", "event_type", "correlation_id", "timestamp"}
    assert (emitted["event_type"], emitted["correlation_id"]) == ("cli.ping", "corr-9")

    def started():
        events = json.loads(dac("events", "--type", "cli.ping", "--correlation-id", "corr-9", "--json")[0])["events"]
        return events if events and events[0]["matched"]["started"] else None

    (event,) = wait_until(started, message="the event to start an instance")
    assert event["event_id"] == emitted["event_id"] and event["payload"] == {"n": 1}
    assert (event["priority"], event["ttl_seconds"], event["expired"]) == (7, 600, False)
    assert event["matched"]["resumed"] == []
    bad = dac_process(live, "emit", "cli.ping", "--payload", "[1]")
    assert bad.returncode != 0 and "--payload must be a JSON object" in bad.stderr


def test_context_get_set_delete_with_versions(live):
    first = json.loads(dac("context", "set", "cli.counter", "41", "--json")[0])
    assert (first["value"], first["version"], first["scope"], first["expires_at"]) == (41, 1, "global", None)
    assert json.loads(dac("context", "set", "cli.note", "plain words", "--json")[0])["value"] == "plain words"
    second = json.loads(dac("context", "set", "cli.counter", "42", "--if-version", "1", "--ttl", "60", "--json")[0])
    assert (second["value"], second["version"]) == (42, 2) and second["expires_at"]
    assert json.loads(dac("context", "get", "cli.counter", "--json")[0]) == second
    with pytest.raises(CommandError, match="at version 2, not version 1"):
        dac("context", "set", "cli.counter", "43", "--if-version", "1")
    dac("context", "delete", "cli.counter")
    with pytest.raises(CommandError, match="is not set"):
        dac("context", "get", "cli.counter")
    scoped = json.loads(dac("context", "set", "k", '{"a": [1]}', "--scope", "workflow_type:support", "--json")[0])
    assert scoped["scope"] == "workflow_type:support" and scoped["value"] == {"a": [1]}
    with pytest.raises(CommandError, match="scope"):
        dac("context", "set", "k", "1", "--scope", "galaxy")
