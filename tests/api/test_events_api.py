"""`/api/v1/events/` (DESIGN §6.1, §8): one event or a bulk list in one transaction, and history."""
import json

import pytest
from rest_framework.test import APIClient

from governance.models import AuditEntry
from orchestration.events.models import Event
from tests.support.helpers import apply_spec


def post(api, body):
    return api.post("/api/v1/events/", data=json.dumps(body), content_type="application/json")


def test_one_event_is_published_with_the_emit_shape(api):
    response = post(api, {"event_type": "pr_created", "payload": {"repo": "acme/api"}, "priority": "high",
                          "correlation_id": "c-1", "ttl_seconds": 60})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"event_id", "event_type", "correlation_id", "timestamp"}
    event = Event.objects.get(event_id=body["event_id"])
    assert (event.priority, event.ttl_seconds, event.payload) == (7, 60, {"repo": "acme/api"})
    assert AuditEntry.objects.filter(verb="event.publish", actor_name="operator").count() == 1


def test_an_event_without_a_correlation_id_correlates_to_itself(api):
    body = post(api, {"event_type": "ping"}).json()
    assert body["correlation_id"] == body["event_id"]


def test_a_bulk_list_is_published_in_one_transaction(api):
    response = post(api, [{"event_type": "tick", "payload": {"n": n}} for n in range(1000)])
    assert response.status_code == 201
    assert len(response.json()["events"]) == 1000
    assert Event.objects.filter(event_type="tick").count() == 1000
    assert AuditEntry.objects.filter(verb="event.publish").count() == 1


@pytest.mark.parametrize("body, field", [
    ([{"event_type": "ok"}, {"event_type": "ok", "priority": "urgent"}], "[1].priority"),
    ([{"event_type": "ok"}, {"payload": {}}], "[1].event_type"),
    ({"event_type": "ok", "payload": [1, 2]}, "payload"),
    ({"event_type": "ok", "ttl_seconds": 0}, "ttl_seconds"),
    ({"event_type": "has space"}, "event_type"),
    ({"event_type": "ok", "colour": "red"}, "colour"),
    ({"event_type": "ok", "payload": {"t": "a\x00b"}}, "payload"),
])
def test_a_bad_event_is_a_400_naming_the_field_and_nothing_is_published(api, body, field):
    response = post(api, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["details"]["fields"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("body", [[], "pr_created", 5, [{"event_type": "x"}] * 1001])
def test_bodies_that_are_not_events_are_400s(api, body):
    assert post(api, body).status_code == 400
    assert not Event.objects.exists()


def test_history_is_newest_first_with_matches_and_filters(api, db):
    apply_spec({"id": "on-tick", "triggers": [{"type": "event", "event": "tick"}],
                "steps": [{"id": "a", "action": "noop"}]})
    first = post(api, {"event_type": "tick", "correlation_id": "c-a"}).json()
    second = post(api, {"event_type": "tock", "correlation_id": "c-b"}).json()
    listed = api.get("/api/v1/events/").json()
    assert [e["event_id"] for e in listed["results"]] == [second["event_id"], first["event_id"]]
    shape = listed["results"][0]
    assert set(shape) == {"event_id", "event_type", "source_workflow", "source_instance", "payload", "priority",
                          "correlation_id", "ttl_seconds", "timestamp", "matched", "expired"}
    assert shape["matched"] == {"started": [], "resumed": []} and shape["expired"] is False
    assert [e["event_id"] for e in api.get("/api/v1/events/?type=tick").json()["results"]] == [first["event_id"]]
    assert api.get("/api/v1/events/?correlation_id=c-b").json()["count"] == 1
    assert api.get("/api/v1/events/?since=2999-01-01T00:00:00Z").json()["count"] == 0
    malformed = api.get("/api/v1/events/?source_instance=not-a-uuid")
    assert malformed.status_code == 400 and "source_instance" in malformed.json()["error"]["details"]
    bad = api.get("/api/v1/events/?since=yesterday")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "since"


def test_events_need_authentication(db):
    response = APIClient().post("/api/v1/events/", data={"event_type": "x"}, format="json")
    assert response.status_code in (401, 403) and "error" in response.json()


def test_odd_but_well_formed_inputs_are_400s_not_500s(api):
    assert post(api, {"event_type": "x", "payload": {"t": "\ud800"}}).status_code == 400
    nested = '{"event_type": "x", "payload": ' + "[" * 100000 + "]" * 100000 + "}"
    assert api.post("/api/v1/events/", data=nested, content_type="application/json").status_code == 400
    assert api.get("/api/v1/events/?since=2026-13-45T10:00:00").status_code == 400
    assert not Event.objects.exists()
