"""`wait_for` (DESIGN §6.4): parked without a worker, resumed once by the first matching event
(also one published before the step parked), timed out by the sweep."""
import pytest
from django.utils import timezone

from dacproject.celery import app
from orchestration.events import tasks as event_tasks
from orchestration.events.models import Event, EventMatch, EventWait
from orchestration.events.services import events_publish
from orchestration.models import StepAttempt
from orchestration.tasks import sweep_timeouts
from tests.support.helpers import apply_spec, finished, start, step, step_reaches, wait_until

pytestmark = pytest.mark.integration


def emit(event_type, payload=None, **fields):
    return events_publish(events=[{"event_type": event_type, "payload": payload or {}, **fields}], actor="test")[0]


REPLY = {"id": "ask", "steps": [
    {"id": "request", "action": "echo", "with": {"order": "{{ context.order }}"}},
    {"id": "reply", "depends_on": ["request"],
     "wait_for": {"event": "order.answered", "match": {"order": "{{ steps.request.output.order }}"},
                  "correlation_id": "{{ context.conversation }}"}},
    {"id": "after", "action": "echo", "depends_on": ["reply"],
     "with": {"answer": "{{ steps.reply.output.payload.answer }}"}},
]}


def test_a_waiting_step_holds_no_worker_and_the_matching_event_resumes_it_once(live):
    apply_spec(REPLY)
    instance = start("ask", {"order": 42, "conversation": "c-1"})
    step_reaches(instance, "reply", "waiting_event")
    wait_until(lambda: not any((app.control.inspect(timeout=1).active() or {}).values()), message="idle workers")
    assert EventWait.objects.get(step_run__instance_id=instance.id).status == "waiting"
    emit("order.answered", {"order": 41, "answer": "wrong order"}, correlation_id="c-1")
    emit("order.answered", {"order": 42, "answer": "wrong conversation"}, correlation_id="c-2")
    right = emit("order.answered", {"order": 42, "answer": "yes"}, correlation_id="c-1")
    instance = finished(instance)
    assert instance.status == "completed"
    assert step(instance, "reply").output == {"event_id": str(right.event_id), "event_type": "order.answered",
                                              "payload": {"order": 42, "answer": "yes"}, "correlation_id": "c-1"}
    assert instance.result == {"after": {"answer": "yes"}}
    event_tasks.react.delay([str(right.event_id)])  # a second delivery resumes nothing
    Event.objects.filter(event_id=right.event_id).update(reacted_at=None)
    event_tasks.react.delay([str(right.event_id)])
    wait_until(lambda: Event.objects.get(event_id=right.event_id).reacted_at is not None, message="the reaction")
    assert EventMatch.objects.filter(event=right, kind="resumed").count() == 1
    assert StepAttempt.objects.filter(step_run=step(instance, "after")).count() == 1


def test_an_event_published_after_the_start_but_before_the_step_parked_still_resumes_it(live):
    # `announce` publishes the reply itself, so it is stored before `reply` parks.
    apply_spec({"id": "early", "steps": [
        {"id": "announce", "action": "echo", "with": {}, "emit": [{"event": "early.reply", "payload": {"ok": True}}]},
        {"id": "slow", "action": "sleep", "with": {"seconds": 0.5}, "depends_on": ["announce"]},
        {"id": "reply", "depends_on": ["slow"], "wait_for": {"event": "early.reply", "match": {"ok": True}}},
    ]})
    before = emit("early.reply", {"ok": True})  # before the instance started: never matches it
    instance = finished(start("early"))
    assert instance.status == "completed"
    assert step(instance, "reply").output["event_id"] != str(before.event_id)
    assert step(instance, "reply").output["payload"] == {"ok": True}


@pytest.mark.parametrize("on_timeout, status", [("fail", "failed"), ("continue", "completed")])
def test_the_sweep_ends_a_wait_at_its_timeout(live, on_timeout, status):
    apply_spec({"id": "patient", "steps": [
        {"id": "reply", "wait_for": {"event": "never", "timeout_seconds": 0.5, "on_timeout": on_timeout}},
        {"id": "after", "action": "echo", "with": {"got": "{{ steps.reply.output }}"}, "depends_on": ["reply"]},
    ]})
    instance = start("patient")
    step_reaches(instance, "reply", "waiting_event")
    wait = wait_until(lambda: EventWait.objects.filter(deadline_at__isnull=False).first(), message="the wait")
    wait_until(lambda: timezone.now() > wait.deadline_at, message="the deadline to pass")
    # The sweep (beat's job) is what acts; sent twice, as two overlapping beats would.
    sweep_timeouts.delay()
    sweep_timeouts.delay()
    instance = finished(instance)
    assert instance.status == status
    reply = step(instance, "reply")
    if on_timeout == "fail":
        assert reply.error["type"] == "WaitTimeout"
    else:
        assert reply.output is None and instance.result == {"after": {"got": None}}
    assert EventWait.objects.get(step_run=reply).status == "timed_out"


def test_a_correlation_id_that_cannot_be_stored_fails_the_step_clearly(live):
    apply_spec({"id": "long-corr", "steps": [
        {"id": "reply", "wait_for": {"event": "x", "correlation_id": "{{ context.conversation }}"}}]})
    instance = finished(start("long-corr", {"conversation": "c" * 300}))
    assert instance.status == "failed"
    assert step(instance, "reply").error == {
        "type": "InvalidWait", "message": "wait_for.correlation_id rendered to 300 characters; at most 200"}
    assert not EventWait.objects.exists()
