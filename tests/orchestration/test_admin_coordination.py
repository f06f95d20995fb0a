"""Console pages of coordination: events (with what they matched), triggers, waits, debounce
windows, schedule state and shared context. Read-only, and no query per row."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration.context.services import context_set
from orchestration.events.models import Event, EventMatch, Trigger
from orchestration.events.services import events_publish
from tests.support.helpers import apply_yaml, start

FLOWS = """
name: console-coordination
workflows:
  - id: console-child
    steps: [{id: a, action: noop}]
  - id: console-listener
    triggers:
      - {type: event, event: console.ping, filters: {team: "a*"}}
      - {type: webhook, path: /console/hook}
    steps:
      - {id: call, spawn: {workflow: console-child}}
      - {id: reply, wait_for: {event: console.pong}, depends_on: [call]}
coordination:
  auto_spawn: [{on_event: console.bug, spawn: console-child, priority: high}]
"""

PAGES = ["event", "trigger", "eventwait", "debouncewindow", "schedulestate", "sharedvalue"]


@pytest.fixture
def coordination(db):
    apply_yaml(FLOWS)
    instance = start("console-listener", {"team": "alpha"})
    events_publish(events=[{"event_type": "console.ping", "payload": {"team": "alpha"}}], actor="test")
    context_set(scope="global", key="console.flag", value={"on": True}, actor="test")
    return instance


def _rows(n):
    now = timezone.now()
    Event.objects.bulk_create(Event(event_type="console.bulk", payload={"n": i}, timestamp=now) for i in range(n))


@pytest.mark.parametrize("page", PAGES)
def test_each_page_lists_and_is_read_only(admin_client, coordination, page):
    response = admin_client.get(f"/admin/orchestration/{page}/")
    assert response.status_code == 200
    assert admin_client.get(f"/admin/orchestration/{page}/add/").status_code == 403


def test_the_trigger_index_shows_event_webhook_and_auto_spawn_rows(admin_client, coordination):
    content = admin_client.get("/admin/orchestration/trigger/").content.decode()
    for key in ("console-listener:triggers[0]", "console-listener:triggers[1]", "console-coordination:auto_spawn[0]"):
        assert key in content
    assert Trigger.objects.count() == 3


def test_an_event_page_shows_what_it_started(admin_client, coordination):
    event = Event.objects.filter(event_type="console.ping").first()
    EventMatch.objects.create(event=event, kind="started", trigger_key="console-listener:triggers[0]",
                              instance=coordination)
    page = admin_client.get(f"/admin/orchestration/event/{event.event_id}/change/").content.decode()
    assert "what this event started or resumed" in page.lower() and str(coordination.id) in page


def test_the_event_list_query_count_does_not_grow_with_rows(admin_client, coordination):
    _rows(3)
    with CaptureQueriesContext(connection) as few:
        admin_client.get("/admin/orchestration/event/")
    _rows(30)
    with CaptureQueriesContext(connection) as many:
        admin_client.get("/admin/orchestration/event/")
    assert len(many) == len(few)


def test_shared_context_page_shows_live_values(admin_client, coordination):
    content = admin_client.get("/admin/orchestration/sharedvalue/").content.decode()
    assert "console.flag" in content and "{&quot;on&quot;: true}" in content
