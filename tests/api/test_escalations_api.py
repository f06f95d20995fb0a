"""`/api/v1/escalations/` (DESIGN §7.1, §8): the §7.1 shape, filters, the approval inbox of the
token's user (`decidable=true`), `resolve/` and `assign/` through the governance services, and the
error envelope for everything a client can get wrong.

Gates are opened by the real engine: a gated step without dependencies parks within `start()`,
so no worker is needed except where the instance must actually run to its end (`live`)."""
import json
import uuid
from datetime import datetime

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance.escalations.models import Escalation
from governance.escalations.proof import digest
from governance.escalations.services import escalation_decide
from governance.models import AuditEntry
from orchestration.models import StepRun
from tests.support.helpers import apply_spec, finished, start, wait_until

URL = "/api/v1/escalations/"
KEYS = {"id", "level", "type", "status", "title", "description", "workflow", "instance", "step", "context",
        "options", "approvers", "min_approvals", "approvals", "assignee", "deadline", "resolution", "resolved_by",
        "resolved_at", "created_at"}


def gated(workflow, *, approvers=("tech_lead",), after=True, **approval):
    """A workflow whose first step `ship` waits for approval (it has no dependencies, so it parks
    within `start()`), followed by `after`."""
    steps = [{"id": "ship", "action": "echo", "with": {"sha": "{{ context.sha }}"},
              "approval": {"approvers": list(approvers), **approval}}]
    if after:
        steps.append({"id": "after", "action": "echo", "depends_on": ["ship"],
                      "with": {"choice": "{{ steps.ship.decision.option }}"}})
    apply_spec({"id": workflow, "type": "operations", "steps": steps})


def gate_of(instance, step_id="ship"):
    return Escalation.objects.get(instance_id=instance.id, step_id=step_id)


def step_status(instance, step_id="ship"):
    return StepRun.objects.get(instance_id=instance.id, step_id=step_id).status


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def resolve(client, escalation, resolution, comment=None):
    body = {"resolution": resolution, **({"comment": comment} if comment is not None else {})}
    return post(client, f"{URL}{escalation.id}/resolve/", body)


def envelope(response):
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def ids(response):
    assert response.status_code == 200, response.content
    return [e["id"] for e in response.json()["results"]]


def unchanged(escalation, instance=None):
    """Nothing about a gate moved: still pending, no decision, its step still parked."""
    fresh = Escalation.objects.get(id=escalation.id)
    assert (fresh.status, fresh.resolution, fresh.resolved_by) == (escalation.status, "", "")
    assert fresh.decisions.count() == escalation.decisions.count()
    if instance is not None:
        assert step_status(instance) == "waiting_approval"


@pytest.fixture
def clients(people):
    return {name: client_for(user) for name, user in people.items()}


@pytest.fixture
def release(people):
    gated("release", type="production_deployment", timeout_minutes=60)
    instance = start("release", {"sha": "abc123"})
    assert step_status(instance) == "waiting_approval"
    return instance


# --- reads -----------------------------------------------------------------------------------

def test_list_and_detail_have_every_key_of_section_7_1(clients, release):
    gate = gate_of(release)
    listed = clients["erin"].get(URL)
    assert listed.status_code == 200
    page = listed.json()
    assert page["count"] == 1
    (item,) = page["results"]
    assert KEYS <= set(item), KEYS - set(item)
    assert item == clients["erin"].get(f"{URL}{gate.id}/").json()
    assert (item["id"], item["level"], item["type"], item["status"]) == (
        str(gate.id), "approval", "production_deployment", "pending")
    assert (item["workflow"], item["instance"], item["step"]) == ("release", str(release.id), "ship")
    assert item["context"] == {"inputs": {"sha": "abc123"}}
    assert (item["options"], item["approvers"], item["min_approvals"]) == (["approve", "reject"], ["tech_lead"], 1)
    assert (item["approvals"], item["assignee"]) == ([], None)
    assert (item["resolution"], item["resolved_by"], item["resolved_at"]) == (None, None, None)
    assert item["title"] and isinstance(item["description"], str)
    created, deadline = datetime.fromisoformat(item["created_at"]), datetime.fromisoformat(item["deadline"])
    assert 3599 <= (deadline - created).total_seconds() <= 3601  # timeout_minutes: 60

    escalation_decide(escalation_id=gate.id, decision="approve", comment="ship it",
                      actor=User.objects.get(username="bob"))
    item = clients["erin"].get(f"{URL}{gate.id}/").json()
    assert (item["status"], item["resolution"], item["resolved_by"]) == ("resolved", "approved", "bob")
    datetime.fromisoformat(item["resolved_at"])
    (approval,) = item["approvals"]
    assert {"user", "decision", "comment", "at"} <= set(approval)
    assert (approval["user"], approval["decision"], approval["comment"]) == ("bob", "approve", "ship it")
    assert approval["shown_sha256"] == digest({"inputs": {"sha": "abc123"}})
    datetime.fromisoformat(approval["at"])


def test_each_filter_narrows_the_list(clients, people, release):
    gated("budget", approvers=["finance"], type="spend", level="review")
    budget = start("budget", {"sha": "b"})
    second = start("release", {"sha": "def456"})
    notice = Escalation.objects.create(level="info", type="cost_notice", gate="none", title="cost is high",
                                       workflow="budget")
    escalation_decide(escalation_id=gate_of(second).id, decision="reject", comment="not today",
                      actor=people["alice"])
    api = clients["erin"]
    assert set(ids(api.get(URL))) == {str(gate_of(release).id), str(gate_of(second).id), str(gate_of(budget).id),
                                      str(notice.id)}
    assert set(ids(api.get(URL, {"status": "pending"}))) == {str(gate_of(release).id), str(gate_of(budget).id),
                                                             str(notice.id)}
    assert ids(api.get(URL, {"status": "resolved"})) == [str(gate_of(second).id)]
    assert ids(api.get(URL, {"status": "expired"})) == []
    assert ids(api.get(URL, {"level": "review"})) == [str(gate_of(budget).id)]
    assert ids(api.get(URL, {"level": "info"})) == [str(notice.id)]
    assert set(ids(api.get(URL, {"level": "approval"}))) == {str(gate_of(release).id), str(gate_of(second).id)}
    assert ids(api.get(URL, {"type": "spend"})) == [str(gate_of(budget).id)]
    assert ids(api.get(URL, {"type": "nothing-like-this"})) == []
    assert set(ids(api.get(URL, {"workflow": "budget"}))) == {str(gate_of(budget).id), str(notice.id)}
    assert ids(api.get(URL, {"instance": str(second.id)})) == [str(gate_of(second).id)]
    assert ids(api.get(URL, {"instance": str(uuid.uuid4())})) == []
    # filters combine
    assert ids(api.get(URL, {"workflow": "release", "status": "pending"})) == [str(gate_of(release).id)]
    assert ids(api.get(URL, {"workflow": "budget", "level": "info", "type": "cost_notice"})) == [str(notice.id)]
    # newest first
    assert ids(api.get(URL, {"workflow": "release"})) == [str(gate_of(second).id), str(gate_of(release).id)]


@pytest.mark.parametrize(("name", "allowed"), [("status", ["pending", "acknowledged", "resolved", "expired"]),
                                               ("level", ["info", "review", "approval", "intervention"])])
def test_a_bogus_status_or_level_is_a_400_naming_the_allowed_values(api, release, name, allowed):
    response = api.get(URL, {name: "bogus"})
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "invalid"
    (problem,) = error["details"][name]
    assert "bogus" in problem and all(value in problem for value in allowed), problem


@pytest.mark.parametrize("value", ["not-a-uuid", "1234", "' OR 1=1 --"])
def test_a_malformed_instance_filter_is_a_400(api, release, value):
    response = api.get(URL, {"instance": value})
    assert response.status_code == 400
    assert "instance" in envelope(response)["details"]


def test_a_nul_in_a_filter_is_a_400_not_a_database_error(api, release):
    response = api.get(URL, {"workflow": "rel\x00ease"})
    assert response.status_code == 400
    assert "workflow" in envelope(response)["details"]


@pytest.mark.parametrize("key", [str(uuid.uuid4()), "not-an-id", "12345", "x" * 300, "%00"])
def test_an_unknown_or_malformed_id_is_a_404_json_envelope(api, release, key):
    for response in (api.get(f"{URL}{key}/"), post(api, f"{URL}{key}/resolve/", {"resolution": "approve"}),
                     post(api, f"{URL}{key}/assign/", {"user": "operator"})):
        assert response.status_code == 404, (response.request["PATH_INFO"], response.content[:200])
        assert response["Content-Type"].startswith("application/json")
        assert envelope(response)["code"] == "not_found"
    unchanged(gate_of(release), release)


def test_unauthenticated_requests_get_an_envelope_and_change_nothing(release):
    anonymous = APIClient()
    gate = gate_of(release)
    for response in (anonymous.get(URL), anonymous.get(f"{URL}{gate.id}/"),
                     post(anonymous, f"{URL}{gate.id}/resolve/", {"resolution": "approve"}),
                     post(anonymous, f"{URL}{gate.id}/assign/", {"user": "nobody"})):
        assert response.status_code in (401, 403)
        assert envelope(response)["code"] in ("not_authenticated", "authentication_failed")
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = bad_token.get(URL)
    assert response.status_code in (401, 403)
    assert envelope(response)["code"] == "authentication_failed"
    unchanged(gate, release)


# --- resolve ---------------------------------------------------------------------------------

def test_a_group_member_approves_and_the_instance_runs_to_its_end(live, people, clients):
    gated("release", type="production_deployment")
    instance = start("release", {"sha": "abc123"})
    gate = wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, status="pending").first())
    response = resolve(clients["alice"], gate, "approve", "ship it")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"], body["resolution"], body["resolved_by"]) == (
        str(gate.id), "resolved", "approved", "alice")
    assert [(a["user"], a["decision"], a["comment"]) for a in body["approvals"]] == [("alice", "approve", "ship it")]
    instance = finished(instance)
    assert instance.status == "completed"
    assert StepRun.objects.get(instance_id=instance.id, step_id="after").output == {"choice": "approve"}
    entry = AuditEntry.objects.get(verb="escalation.decide", target_id=str(gate.id))
    assert (entry.actor_name, entry.details["decision"], entry.details["comment"]) == ("alice", "approve", "ship it")


def test_approving_readies_the_parked_step_at_once(clients, release):
    gate = gate_of(release)
    response = resolve(clients["bob"], gate, "approve")
    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert step_status(release) == "ready"
    run = StepRun.objects.get(instance_id=release.id, step_id="ship")
    assert (run.approved_by, run.decision["option"], run.decision["escalation"]) == ("bob", "approve", str(gate.id))


def test_a_rejection_with_a_comment_fails_the_step(clients, release):
    response = resolve(clients["alice"], gate_of(release), "reject", "not this week")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["resolution"]) == ("resolved", "rejected")
    run = StepRun.objects.get(instance_id=release.id, step_id="ship")
    assert run.status == "failed"
    assert run.error == {"type": "Rejected", "message": "rejected by alice: not this week"}


@pytest.mark.parametrize("resolution", ["reject", "rejected"])
@pytest.mark.parametrize("comment", [None, "", "   \n\t"])
def test_a_rejection_without_a_reason_is_a_400_naming_comment_and_changes_nothing(clients, release, resolution,
                                                                                  comment):
    gate = gate_of(release)
    audits = AuditEntry.objects.count()
    response = resolve(clients["alice"], gate, resolution, comment)
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "invalid" and error["details"]["field"] == "comment"
    assert "a rejection needs a reason" in error["message"]
    unchanged(gate, release)
    assert AuditEntry.objects.count() == audits
    # approving needs no comment; an option other than reject neither
    assert resolve(clients["alice"], gate, "approve").status_code == 200


def test_a_rejection_through_the_instance_route_needs_a_reason_too(clients, release):
    gate = gate_of(release)
    response = post(clients["alice"], f"/api/v1/instances/{release.id}/reject/", {"step": "ship", "comment": " "})
    assert response.status_code == 400 and envelope(response)["details"]["field"] == "comment"
    unchanged(gate, release)
    response = post(clients["alice"], f"/api/v1/instances/{release.id}/reject/", {"step": "ship", "comment": "no"})
    assert response.status_code == 200 and response.json()["status"] == "failed"


@pytest.mark.parametrize("who", ["carol", "erin"])
def test_a_non_member_is_refused_with_403_nothing_changes_and_it_is_audited(clients, people, release, who):
    gate = gate_of(release)
    response = resolve(clients[who], gate, "approve", "let me")
    assert response.status_code == 403
    error = envelope(response)
    assert error["code"] == "forbidden"
    assert who in error["message"] and "none of the approver groups" in error["message"]
    unchanged(gate, release)
    entry = AuditEntry.objects.get(verb="escalation.refused")
    assert (entry.actor_name, entry.actor_id, entry.target_type, entry.target_id) == (
        who, people[who].id, "escalation", str(gate.id))
    assert entry.details["decision"] == "approve" and "none of the approver groups" in entry.details["reason"]
    assert not AuditEntry.objects.filter(verb="escalation.decide").exists()


def test_the_starter_may_not_decide_their_own_instance(clients, people):
    gated("release")
    instance = start("release", {"sha": "x"}, actor=people["alice"])
    gate = gate_of(instance)
    response = resolve(clients["alice"], gate, "approve")
    assert response.status_code == 403
    assert "started this instance" in envelope(response)["message"]
    unchanged(gate, instance)
    assert AuditEntry.objects.filter(verb="escalation.refused", actor_name="alice").exists()
    assert resolve(clients["bob"], gate, "approve").status_code == 200


def test_self_approval_when_the_setting_allows_it(clients, people, settings):
    settings.DAC_ALLOW_SELF_APPROVAL = True
    gated("release")
    instance = start("release", {"sha": "x"}, actor=people["alice"])
    gate = gate_of(instance)
    assert ids(clients["alice"].get(URL, {"decidable": "true"})) == [str(gate.id)]
    response = resolve(clients["alice"], gate, "approve")
    assert response.status_code == 200 and response.json()["resolved_by"] == "alice"


def test_a_session_without_the_csrf_token_is_refused(people, release):
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(people["alice"])
    gate = gate_of(release)
    assert session.get(f"{URL}{gate.id}/").status_code == 200  # session auth reads
    response = post(session, f"{URL}{gate.id}/resolve/", {"resolution": "approve"})
    assert response.status_code == 403
    assert "CSRF" in envelope(response)["message"]
    unchanged(gate, release)


def test_decide_any_permission_decides_outside_the_groups(clients, release):
    response = resolve(clients["dave"], gate_of(release), "approve")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["resolved_by"]) == ("resolved", "dave")


def test_an_unknown_option_is_a_400_naming_the_allowed_ones(clients, release):
    gate = gate_of(release)
    response = resolve(clients["alice"], gate, "maybe")
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "invalid" and "maybe" in error["message"]
    assert error["details"]["allowed"] == ["approve", "reject"]
    unchanged(gate, release)
    assert not AuditEntry.objects.filter(verb__in=["escalation.decide", "escalation.refused"]).exists()


def test_options_are_the_resolutions_and_approve_is_not_one_of_them(clients, people):
    gated("rollout", options=["ship", "hold", "reject"])
    instance = start("rollout", {"sha": "x"})
    gate = gate_of(instance)
    refused = resolve(clients["alice"], gate, "approve")
    assert refused.status_code == 400
    assert envelope(refused)["details"]["allowed"] == ["ship", "hold", "reject"]
    response = resolve(clients["alice"], gate, "hold", "after the freeze")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["resolution"]) == ("resolved", "hold")
    assert step_status(instance) == "ready"  # any option but reject lets the step run
    assert StepRun.objects.get(instance_id=instance.id, step_id="ship").decision["option"] == "hold"


def test_resolving_a_resolved_escalation_is_a_409(clients, release):
    gate = gate_of(release)
    assert resolve(clients["alice"], gate, "approve").status_code == 200
    for who, resolution in (("bob", "reject"), ("alice", "approve"), ("dave", "acknowledge")):
        response = resolve(clients[who], gate, resolution, "too late")
        assert response.status_code == 409, (who, response.content)
        error = envelope(response)
        assert error["code"] == "conflict" and "resolved" in error["message"]
        assert error["details"]["status"] == "resolved"
    gate.refresh_from_db()
    assert (gate.resolution, gate.resolved_by, gate.decisions.count()) == ("approved", "alice", 1)
    assert step_status(release) == "ready"


def test_quorum_one_approval_of_two_leaves_it_pending_and_each_person_counts_once(clients, people):
    gated("quorum", min_approvals=2)
    instance = start("quorum", {"sha": "q"})
    gate = gate_of(instance)
    first = resolve(clients["alice"], gate, "approve", "one")
    assert first.status_code == 200
    body = first.json()
    assert (body["status"], body["resolution"], body["min_approvals"]) == ("pending", None, 2)
    assert [(a["user"], a["decision"]) for a in body["approvals"]] == [("alice", "approve")]
    assert step_status(instance) == "waiting_approval"
    again = resolve(clients["alice"], gate, "approve", "one more time")
    assert again.status_code == 409 and "already decided" in envelope(again)["message"]
    assert len(clients["erin"].get(f"{URL}{gate.id}/").json()["approvals"]) == 1
    second = resolve(clients["bob"], gate, "approve", "two")
    assert second.status_code == 200
    assert (second.json()["status"], second.json()["resolution"]) == ("resolved", "approved")
    assert [a["user"] for a in second.json()["approvals"]] == ["alice", "bob"]
    assert step_status(instance) == "ready"


def test_one_rejection_vetoes_a_quorum(clients):
    gated("quorum", min_approvals=2)
    instance = start("quorum", {"sha": "q"})
    gate = gate_of(instance)
    assert resolve(clients["alice"], gate, "approve").status_code == 200
    vetoed = resolve(clients["bob"], gate, "reject", "no")
    assert (vetoed.json()["status"], vetoed.json()["resolution"]) == ("resolved", "rejected")
    assert step_status(instance) == "failed"


def test_acknowledging_keeps_a_gate_open_and_takes_it(clients, release):
    gate = gate_of(release)
    response = resolve(clients["alice"], gate, "acknowledge")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["assignee"]) == ("acknowledged", "alice")
    assert step_status(release) == "waiting_approval"
    assert resolve(clients["bob"], gate, "approve").json()["status"] == "resolved"


def test_who_acknowledged_a_gate_may_then_decide_it(clients, release):
    """Acknowledging says "I am looking at it" and makes the user its assignee (DESIGN §7.3:
    acknowledge, then approve or reject); it is not a vote, so it must not use up their decision."""
    gate = gate_of(release)
    assert resolve(clients["alice"], gate, "acknowledge", "looking").status_code == 200
    response = resolve(clients["alice"], gate, "approve", "done looking")
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["resolved_by"]) == ("resolved", "alice")
    assert step_status(release) == "ready"


@pytest.mark.parametrize("body", [
    {},
    {"comment": "no resolution"},
    {"resolution": ""},
    {"resolution": ["approve"]},
    {"resolution": {"option": "approve"}},
    {"resolution": None},
    {"resolution": True},
    {"resolution": "approve", "comment": "x" * 5001},
    {"resolution": "approve", "comment": ["why"]},
    {"resolution": "approve", "comment": None},
    {"resolution": "a" * 101},
    {"resolution": "approve", "comment": "ok\x00then"},
    {"resolution": "appr\x00ove"},
    ["approve"],
    "approve",
])
def test_a_bad_resolve_body_is_a_400_and_changes_nothing(clients, release, body):
    gate = gate_of(release)
    response = post(clients["alice"], f"{URL}{gate.id}/resolve/", body)
    assert response.status_code == 400, response.content
    assert envelope(response)["code"] == "invalid"
    unchanged(gate, release)


def test_a_body_that_is_not_json_is_a_400(clients, release):
    gate = gate_of(release)
    response = clients["alice"].post(f"{URL}{gate.id}/resolve/", data="resolution=approve",
                                     content_type="application/json")
    assert response.status_code == 400
    envelope(response)
    unchanged(gate, release)


def test_the_longest_comment_allowed_is_kept(clients, release):
    response = resolve(clients["alice"], gate_of(release), "approve", "y" * 5000)
    assert response.status_code == 200
    assert response.json()["approvals"][0]["comment"] == "y" * 5000


def test_resolve_and_assign_are_post_only(clients, release):
    gate = gate_of(release)
    for url in (f"{URL}{gate.id}/resolve/", f"{URL}{gate.id}/assign/"):
        response = clients["alice"].get(url)
        assert response.status_code == 405
        assert envelope(response)["code"] == "method_not_allowed"
    assert clients["alice"].delete(f"{URL}{gate.id}/").status_code == 405
    unchanged(gate, release)


def test_a_notice_can_only_be_acknowledged_which_resolves_it(clients):
    notice = Escalation.objects.create(level="review", type="notify_cost", gate="none", title="cost is high",
                                       workflow="budget", approvers=["tech_lead"])
    response = resolve(clients["alice"], notice, "approve")
    assert response.status_code == 400
    assert envelope(response)["details"]["allowed"] == ["acknowledge"]
    assert ids(clients["alice"].get(URL, {"decidable": "true"})) == [str(notice.id)]
    assert resolve(clients["erin"], notice, "acknowledge").status_code == 403
    response = resolve(clients["alice"], notice, "acknowledge", "seen")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["resolution"], body["resolved_by"], body["instance"], body["step"]) == (
        "resolved", "acknowledged", "alice", None, None)


@pytest.mark.parametrize(("min_approvals", "outcomes"), [(1, [200, 409]), (2, [200, 200])])
def test_two_approvers_at_once_one_resolves_or_both_count(live, people, min_approvals, outcomes):
    """Decisions racing on one gate serialise on the instance and escalation rows: with one
    approval needed the second finds it resolved (409); with two, both count."""
    import threading

    from django.db import connection

    gated("race", min_approvals=min_approvals)
    instance = start("race", {"sha": "r"})
    gate = wait_until(lambda: Escalation.objects.filter(instance_id=instance.id).first())
    clients = {name: client_for(people[name]) for name in ("alice", "bob")}
    barrier, statuses = threading.Barrier(2), []

    def decide(name):
        try:
            barrier.wait(timeout=10)
            statuses.append(resolve(clients[name], gate, "approve", name).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(name,)) for name in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == outcomes
    gate.refresh_from_db()
    assert (gate.status, gate.resolution) == ("resolved", "approved")
    assert gate.decisions.count() == min_approvals
    assert finished(instance).status == "completed"
    assert StepRun.objects.get(instance_id=instance.id, step_id="ship").attempts == 1


# --- assign ----------------------------------------------------------------------------------

def test_assign_to_an_unknown_or_inactive_user_is_a_400(clients, people, release):
    gate = gate_of(release)
    people["erin"].is_active = False
    people["erin"].save()
    for user in ("nobody", "erin", ""):
        response = post(clients["alice"], f"{URL}{gate.id}/assign/", {"user": user})
        assert response.status_code == 400, (user, response.content)
        envelope(response)
    for body in ({}, {"user": ["bob"]}, {"user": "bob", "comment": "c" * 5001}):
        response = post(clients["alice"], f"{URL}{gate.id}/assign/", body)
        assert response.status_code == 400, (body, response.content)
    gate.refresh_from_db()
    assert gate.assignee is None
    assert not AuditEntry.objects.filter(verb="escalation.assign").exists()


def test_assign_to_a_user_who_may_then_decide(clients, people, release):
    gate = gate_of(release)
    assert resolve(clients["erin"], gate, "approve").status_code == 403  # not yet hers
    response = post(clients["bob"], f"{URL}{gate.id}/assign/", {"user": "erin", "comment": "erin owns it"})
    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["assignee"], response.json()["status"]) == (
        str(gate.id), "erin", "pending")
    assert AuditEntry.objects.get(verb="escalation.assign").details == {"assignee": "erin", "comment": "erin owns it"}
    decided = resolve(clients["erin"], gate, "approve", "mine now")
    assert decided.status_code == 200
    assert (decided.json()["status"], decided.json()["resolved_by"]) == ("resolved", "erin")
    assert step_status(release) == "ready"


def test_only_someone_who_may_decide_may_reassign(clients, release):
    gate = gate_of(release)
    response = post(clients["erin"], f"{URL}{gate.id}/assign/", {"user": "erin"})
    assert response.status_code == 403
    assert envelope(response)["code"] == "forbidden"
    gate.refresh_from_db()
    assert gate.assignee is None
    assert AuditEntry.objects.filter(verb="escalation.refused", actor_name="erin").exists()


def test_assigning_a_resolved_escalation_is_a_409(clients, release):
    gate = gate_of(release)
    resolve(clients["alice"], gate, "approve")
    response = post(clients["bob"], f"{URL}{gate.id}/assign/", {"user": "erin"})
    assert response.status_code == 409
    assert envelope(response)["code"] == "conflict"


# --- the inbox: decidable=true ---------------------------------------------------------------

def test_decidable_lists_what_the_token_user_may_decide_open_first_then_by_deadline(clients, people):
    gated("later", timeout_minutes=120)
    gated("sooner", timeout_minutes=30)
    gated("whenever")
    gated("soonest", timeout_minutes=5)
    gated("money", approvers=["finance"], timeout_minutes=1)
    later, sooner, whenever, soonest = (start(w, {"sha": w}) for w in ("later", "sooner", "whenever", "soonest"))
    money = start("money", {"sha": "m"})
    own = start("later", {"sha": "mine"}, actor=people["alice"])
    escalation_decide(escalation_id=gate_of(soonest).id, decision="approve", actor=people["bob"])

    expected = [str(gate_of(i).id) for i in (sooner, later, whenever, soonest)]
    assert ids(clients["alice"].get(URL, {"decidable": "true"})) == expected
    assert ids(clients["alice"].get(URL, {"decidable": "1"})) == expected
    # filters still apply to the inbox
    assert ids(clients["alice"].get(URL, {"decidable": "true", "status": "pending"})) == expected[:3]
    # carol (finance) sees only the finance gate; erin nothing; dave everything but no own instance
    assert ids(clients["carol"].get(URL, {"decidable": "true"})) == [str(gate_of(money).id)]
    assert ids(clients["erin"].get(URL, {"decidable": "true"})) == []
    assert set(ids(clients["dave"].get(URL, {"decidable": "true"}))) == {
        str(gate_of(i).id) for i in (later, sooner, whenever, soonest, money, own)}
    # bob may decide alice's own instance; alice may not
    assert str(gate_of(own).id) in ids(clients["bob"].get(URL, {"decidable": "true"}))
    assert str(gate_of(own).id) not in ids(clients["alice"].get(URL, {"decidable": "true"}))
    # without decidable, everything is listed newest first
    assert len(ids(clients["erin"].get(URL))) == 6


def test_decidable_includes_what_is_assigned_to_the_user(clients, people, release):
    gate = gate_of(release)
    assert ids(clients["erin"].get(URL, {"decidable": "true"})) == []
    post(clients["alice"], f"{URL}{gate.id}/assign/", {"user": "erin"})
    assert ids(clients["erin"].get(URL, {"decidable": "true"})) == [str(gate.id)]


def test_list_query_count_does_not_grow_with_escalations(clients, people, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    gated("release")
    for n in range(3):
        escalation_decide(escalation_id=gate_of(start("release", {"sha": n})).id, decision="approve",
                          actor=people["bob"])
    with CaptureQueriesContext(connection) as few:
        assert len(ids(clients["alice"].get(URL, {"decidable": "true"}))) == 3
    for n in range(9):
        escalation_decide(escalation_id=gate_of(start("release", {"sha": n})).id, decision="approve",
                          actor=people["bob"])
    with django_assert_max_num_queries(len(few)):
        assert len(ids(clients["alice"].get(URL, {"decidable": "true"}))) == 12
