"""`/api/v1/instances/` (DESIGN §8): list, detail, lifecycle, and decisions on parked steps."""
import json
import uuid

import pytest
from django.contrib.auth.models import Group

from governance.models import AuditEntry
from orchestration.models import StepRun
from tests.support.helpers import apply_spec, start

GATED = {"id": "gated", "steps": [
    {"id": "gate", "action": "echo", "approval": True, "with": {"v": 1}},
    {"id": "after", "action": "noop", "depends_on": ["gate"]},
]}


@pytest.fixture
def parked(db):
    apply_spec(GATED)
    return start("gated", {"k": 1})


def post(api, url, body=None):
    return api.post(url, data=json.dumps(body or {}), content_type="application/json")


def test_list_with_filters(api, parked):
    apply_spec({"id": "other", "steps": [{"id": "a", "action": "noop"}]})
    start("other")
    assert api.get("/api/v1/instances/").json()["count"] == 2
    assert [i["id"] for i in api.get("/api/v1/instances/?workflow=gated").json()["results"]] == [str(parked.id)]
    assert api.get("/api/v1/instances/?status=waiting").json()["count"] == 1
    assert api.get("/api/v1/instances/?status=").json()["count"] == 2  # an empty filter is no filter
    assert api.get(f"/api/v1/instances/?parent={uuid.uuid4()}").json()["count"] == 0


def test_a_bogus_status_or_malformed_parent_is_a_400_naming_the_field(api, parked):
    bogus = api.get("/api/v1/instances/?status=bogus")
    assert bogus.status_code == 400
    error = bogus.json()["error"]
    assert error["code"] == "invalid"
    (problem,) = error["details"]["status"]
    assert "bogus" in problem and all(value in problem for value in ("running", "waiting", "completed", "timed_out"))
    malformed = api.get("/api/v1/instances/?parent=not-a-uuid&status=nope")
    assert malformed.status_code == 400
    assert set(malformed.json()["error"]["details"]) == {"parent", "status"}


def test_detail_has_the_status_json_shape(api, parked):
    body = api.get(f"/api/v1/instances/{parked.id}/").json()
    assert set(body) == {"id", "workflow", "version", "status", "priority", "result", "error", "parent", "children",
                         "trigger", "correlation_id", "created_by", "created_at", "started_at", "finished_at",
                         "steps"}
    assert (body["priority"], body["children"], body["trigger"]) == (5, [], {"type": "manual"})
    assert body["correlation_id"] == str(parked.id) and body["created_by"] is None
    assert body["steps"][0] == {"step_id": "gate", "status": "waiting_approval", "attempts": 0, "started_at": None,
                                "finished_at": None, "output": None, "error": None}


def test_unknown_instance_is_a_404(api, db):
    assert api.get(f"/api/v1/instances/{uuid.uuid4()}/").status_code == 404
    assert post(api, f"/api/v1/instances/{uuid.uuid4()}/pause/").status_code == 404


def test_lifecycle_actions_and_conflicts(api, parked):
    url = f"/api/v1/instances/{parked.id}"
    assert post(api, f"{url}/pause/").json()["status"] == "paused"
    conflict = post(api, f"{url}/pause/")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    assert post(api, f"{url}/resume/").json()["status"] == "waiting"
    assert post(api, f"{url}/retry/").status_code == 409
    assert post(api, f"{url}/terminate/").json()["status"] == "terminated"
    assert post(api, f"{url}/resume/").status_code == 409
    assert list(AuditEntry.objects.filter(actor_name="operator").values_list("verb", flat=True)) == [
        "instance.pause", "instance.resume", "instance.terminate"]


@pytest.fixture
def approver(user):
    """The API user, in the default approver group (DAC_DEFAULT_APPROVERS)."""
    user.groups.add(Group.objects.get_or_create(name="approvers")[0])
    return user


def test_approve_a_parked_step(api, approver, parked):
    response = post(api, f"/api/v1/instances/{parked.id}/approve/", {"step": "gate", "comment": "ship it"})
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert StepRun.objects.get(instance=parked, step_id="gate").approved_by == "operator"
    entry = AuditEntry.objects.get(verb="escalation.decide")
    assert (entry.details["decision"], entry.details["comment"]) == ("approve", "ship it")


def test_a_user_outside_the_approver_groups_is_refused_with_403_and_an_audit_row(api, parked):
    response = post(api, f"/api/v1/instances/{parked.id}/approve/", {"step": "gate"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden" and "approvers" in error["message"]
    assert StepRun.objects.get(instance=parked, step_id="gate").status == "waiting_approval"
    refusal = AuditEntry.objects.get(verb="escalation.refused")
    assert refusal.actor_name == "operator" and "approver groups" in refusal.details["reason"]


@pytest.mark.parametrize("body", [{"step": "gate"}, {"step": "gate", "comment": ""}, {"step": "gate", "comment": " "}])
def test_reject_without_a_reason_is_a_400_and_changes_nothing(api, approver, parked, body):
    audits = AuditEntry.objects.count()
    response = post(api, f"/api/v1/instances/{parked.id}/reject/", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["details"] == {"field": "comment"}
    assert "a rejection needs a reason" in error["message"]
    assert StepRun.objects.get(instance=parked, step_id="gate").status == "waiting_approval"
    assert AuditEntry.objects.count() == audits


def test_reject_a_parked_step_fails_it(api, approver, parked):
    response = post(api, f"/api/v1/instances/{parked.id}/reject/", {"step": "gate", "comment": "wrong input"})
    assert response.json()["status"] == "failed"
    assert StepRun.objects.get(instance=parked, step_id="gate").decision_comment == "wrong input"
    assert api.get(f"/api/v1/instances/{parked.id}/").json()["status"] == "failed"


@pytest.mark.parametrize("body, status, code", [
    ({}, 400, "invalid"), ({"step": "nope"}, 404, "not_found"), ({"step": "after"}, 409, "conflict"),
    ({"step": ["gate"]}, 400, "invalid"),
])
def test_bad_decisions_are_4xx_and_change_nothing(api, approver, parked, body, status, code):
    response = post(api, f"/api/v1/instances/{parked.id}/approve/", body)
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert StepRun.objects.get(instance=parked, step_id="gate").status == "waiting_approval"
    assert not AuditEntry.objects.filter(verb="escalation.decide").exists()


def test_nul_in_a_filter_is_a_400(api, parked):
    response = api.get("/api/v1/instances/?workflow=x%00")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "workflow": ["must not contain a NUL character or an unpaired surrogate"]}


def test_list_filters_by_correlation_id_and_run_takes_a_priority_name(api, parked):
    response = post(api, "/api/v1/workflows/gated/run/", {"context": {"k": 2}, "priority": "high"})
    assert response.status_code == 201
    started = response.json()
    assert (started["priority"], started["trigger"], started["created_by"]) == (7, {"type": "manual"}, "operator")
    listed = api.get(f"/api/v1/instances/?correlation_id={started['correlation_id']}").json()
    assert [i["id"] for i in listed["results"]] == [started["id"]]
    assert post(api, "/api/v1/workflows/gated/run/", {"priority": "urgent"}).status_code == 400


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "12345", "zz" * 16])
def test_a_malformed_instance_id_is_a_json_404(api, bad_id):
    for url in (f"/api/v1/instances/{bad_id}/", f"/api/v1/instances/{bad_id}/lineage/"):
        answer = api.get(url)
        assert answer.status_code == 404 and answer["Content-Type"].startswith("application/json"), url
        assert answer.json()["error"]["code"] == "not_found"
