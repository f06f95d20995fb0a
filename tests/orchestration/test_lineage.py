"""Lineage (`orchestration.lineage`, `instances/{id}/lineage/`, the console panel).

The chain is made by the real services in-process: an event published by `events_publish` is
reacted to with `events_react` (what the `react` task runs), steps run as the `run_step` task
runs them, the spawn step as the spawn task does. Under the `db` fixture nothing commits, so no
Celery message leaves and no worker is needed.
"""
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from governance.escalations.models import Escalation
from orchestration.events.models import Event, EventMatch
from orchestration.events.reactions import events_react
from orchestration.events.services import events_publish
from orchestration.lineage import instance_lineage, lineage_outline
from orchestration.models import StepRun, WorkflowInstance
from orchestration.spawning.services import child_spawn
from tests.orchestration.resources.inprocess import run_to_rest
from tests.support.helpers import apply_yaml, start

FLOWS = """
name: lineage-flows
workflows:
  - id: lin-intake
    triggers: [{type: event, event: lin.order}]
    steps:
      - {id: announce, action: noop, emit: [{event: lin.accepted, payload: {order: 7}}]}
  - id: lin-fulfil
    triggers: [{type: event, event: lin.accepted}]
    steps:
      - {id: pack, spawn: {workflow: lin-pack, strategy: fire_and_forget}}
      - {id: ship, action: noop, approval: {type: release}}
  - id: lin-pack
    steps: [{id: a, action: noop}]
"""


def _kinds(node):
    return [(c["kind"], c.get("workflow") or c.get("event_type") or c.get("type")) for c in node["children"]]


def _react(event_type):
    events_react(event_ids=list(Event.objects.filter(event_type=event_type).values_list("event_id", flat=True)))


@pytest.fixture
def chain(db):
    """event lin.order -> lin-intake -> emits lin.accepted -> lin-fulfil -> spawns lin-pack, and
    parks `ship` behind an escalation."""
    apply_yaml(FLOWS)
    events_publish(events=[{"event_type": "lin.order", "payload": {"order": 7}, "correlation_id": "ORDER-7"}],
                   actor="test")
    _react("lin.order")
    intake = WorkflowInstance.objects.get(definition__key="lin-intake")
    run_to_rest(intake)
    _react("lin.accepted")
    fulfil = WorkflowInstance.objects.get(definition__key="lin-fulfil")
    pack = StepRun.objects.get(instance=fulfil, step_id="pack")
    child_spawn(step_run_id=pack.id, index=None, attempt=1)
    return {"intake": intake, "fulfil": fulfil, "pack": WorkflowInstance.objects.get(definition__key="lin-pack")}


def test_the_tree_runs_from_the_event_through_instances_events_children_and_escalations(chain):
    tree = instance_lineage(chain["pack"].id)
    assert tree["correlation_id"] == "ORDER-7" and tree["instance"] == str(chain["pack"].id)
    assert tree["truncated"] is False
    root = tree["root"]
    assert (root["kind"], root["event_type"]) == ("event", "lin.order")
    assert _kinds(root) == [("instance", "lin-intake")]
    intake = root["children"][0]
    assert intake["id"] == str(chain["intake"].id) and intake["status"] == "completed"
    assert intake["trigger"] == "event" and intake["finished_at"]
    # Its lifecycle events (workflow.started, step.completed, ...) started nothing: left out.
    assert _kinds(intake) == [("event", "lin.accepted")]
    fulfil = intake["children"][0]["children"][0]
    assert (fulfil["kind"], fulfil["workflow"], fulfil["id"]) == ("instance", "lin-fulfil", str(chain["fulfil"].id))
    assert sorted(_kinds(fulfil)) == [("escalation", "release"), ("instance", "lin-pack")]
    child = next(c for c in fulfil["children"] if c["kind"] == "instance")
    assert (child["id"], child["trigger"], child["step"], child["children"]) == (
        str(chain["pack"].id), "spawn", "pack", [])
    escalation = next(c for c in fulfil["children"] if c["kind"] == "escalation")
    assert {k: escalation[k] for k in ("level", "status", "step")} == {
        "level": "approval", "status": "pending", "step": "ship"}
    assert escalation["id"] == str(Escalation.objects.get(instance=chain["fulfil"]).id)
    # Every member of the correlation sees the same tree.
    assert instance_lineage(chain["intake"].id)["root"] == root
    assert tree["nodes"] == 6


def test_several_roots_hang_under_the_correlation_and_a_resume_is_a_leaf(chain):
    late = Event.objects.create(event_type="lin.reply", correlation_id="ORDER-7",
                                timestamp=timezone.now() + timezone.timedelta(seconds=1))
    EventMatch.objects.create(event=late, kind="resumed", instance=chain["fulfil"], step_id="ship")
    root = instance_lineage(chain["fulfil"].id)["root"]
    assert (root["kind"], root["id"]) == ("correlation", "ORDER-7")
    assert _kinds(root) == [("event", "lin.order"), ("event", "lin.reply")]
    resumed = root["children"][1]["children"]
    assert [(n["id"], n["resumed_step"], n["children"]) for n in resumed] == [(str(chain["fulfil"].id), "ship", [])]


def test_an_event_emitted_under_another_correlation_shows_what_it_started_there(chain):
    aside = start("lin-pack")
    away = Event.objects.create(event_type="lin.aside", source_instance=chain["intake"], correlation_id="OTHER",
                                timestamp=timezone.now())
    EventMatch.objects.create(event=away, kind="started", trigger_key="k", instance=aside)
    intake = instance_lineage(chain["intake"].id)["root"]["children"][0]
    node = next(c for c in intake["children"] if c.get("event_type") == "lin.aside")
    assert node["correlation_id"] == "OTHER"
    assert [(c["id"], c["correlation_id"]) for c in node["children"]] == [(str(aside.id), aside.correlation_id)]


def test_a_huge_correlation_is_cut_at_the_cap(db):
    apply_yaml(FLOWS)
    instance = start("lin-pack")
    now = timezone.now()
    Event.objects.bulk_create(Event(event_type="lin.noise", source_instance=instance,
                                    correlation_id=instance.correlation_id, timestamp=now) for _ in range(520))
    tree = instance_lineage(instance.id)
    assert tree["truncated"] is True and tree["nodes"] == 500
    assert len(tree["root"]["children"]) == 499
    small = instance_lineage(instance.id, max_nodes=10)
    assert small["truncated"] is True and small["nodes"] == 10


def test_the_query_count_does_not_grow_with_the_tree(chain):
    with CaptureQueriesContext(connection) as few:
        small = instance_lineage(chain["intake"].id)
    fulfil = chain["fulfil"]
    now = timezone.now()
    Event.objects.bulk_create(Event(event_type="lin.more", source_instance=fulfil, correlation_id="ORDER-7",
                                    timestamp=now) for _ in range(30))
    for n in range(5):
        start_child = start("lin-pack")
        WorkflowInstance.objects.filter(id=start_child.id).update(parent=fulfil, correlation_id="ORDER-7")
        Escalation.objects.create(title=f"look {n}", workflow="lin-pack", instance=start_child, level="info")
    with CaptureQueriesContext(connection) as many:
        big = instance_lineage(chain["intake"].id)
    assert big["nodes"] == small["nodes"] + 30 + 5 + 5
    assert len(many) == len(few) <= 6


def test_the_outline_opens_and_closes_each_list_of_children(chain):
    rows = lineage_outline(instance_lineage(chain["intake"].id)["root"])
    assert sum(1 for r in rows if r.get("open")) == sum(1 for r in rows if r.get("close"))
    assert [r["node"]["kind"] for r in rows if "node" in r][:3] == ["event", "instance", "event"]


def test_the_api_answers_the_tree_and_404_in_the_envelope(chain, admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.get(f"/api/v1/instances/{chain['fulfil'].id}/lineage/")
    assert response.status_code == 200
    assert response.json()["root"]["event_type"] == "lin.order"
    for unknown in (uuid.uuid4(), "0" * 32 + "-ab"):
        missing = api.get(f"/api/v1/instances/{unknown}/lineage/")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert APIClient().get(f"/api/v1/instances/{chain['fulfil'].id}/lineage/").status_code in (401, 403)


def test_the_schema_documents_the_route(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/instances/{id}/lineage/"]["get"]
    assert set(operation["responses"]) >= {"200", "404"}


def test_the_console_shows_the_lineage_panel_with_links_and_the_current_instance(admin_client, chain):
    page = admin_client.get(f"/admin/orchestration/workflowinstance/{chain['fulfil'].id}/change/").content.decode()
    panel = page[page.index('id="dac-lineage"'):]
    assert "ORDER-7" in panel and "lin.order" in panel and "lin.accepted" in panel
    assert f"/admin/orchestration/workflowinstance/{chain['intake'].id}/change/" in panel
    assert f"/admin/orchestration/workflowinstance/{chain['pack'].id}/change/" in panel
    escalation = Escalation.objects.get(instance=chain["fulfil"])
    assert f"/admin/governance/escalation/{escalation.id}/change/" in panel
    assert '<mark class="dac-lineage-current"><strong>lin-fulfil</strong> (this instance)</mark>' in panel
    assert panel.count("<ul") == panel.count("</ul>")


def test_a_lifecycle_event_stays_when_it_started_something(chain):
    done = Event.objects.get(event_type="workflow.completed", source_instance=chain["intake"])
    follower = start("lin-pack")
    WorkflowInstance.objects.filter(id=follower.id).update(correlation_id="ORDER-7")
    EventMatch.objects.create(event=done, kind="started", trigger_key="k", instance=follower)
    intake = instance_lineage(chain["intake"].id)["root"]["children"][0]
    assert _kinds(intake) == [("event", "lin.accepted"), ("event", "workflow.completed")]
    assert _kinds(intake["children"][1]) == [("instance", "lin-pack")]
