"""The event bus end to end (DESIGN §6.1, §6.2): triggers, filters, auto_spawn, lifecycle events,
correlation, exactly-once reactions, expiry, debounce and the reconciler's share."""
import pytest
from django.utils import timezone

from orchestration.events import tasks as event_tasks
from orchestration.events.models import Event, EventMatch
from orchestration.events.publish import Draft, publish
from orchestration.events.services import events_publish, events_reconcile
from orchestration.models import WorkflowInstance
from tests.support.helpers import apply_spec, apply_yaml, finished, start, wait_until

pytestmark = pytest.mark.integration


def started_by(workflow, *, count=1, timeout=30):
    def enough():
        found = list(WorkflowInstance.objects.filter(definition__key=workflow).order_by("created_at"))
        return found if len(found) >= count else None
    return wait_until(enough, timeout=timeout, message=f"{count} instance(s) of {workflow}")


def emit(event_type, payload=None, **fields):
    return events_publish(events=[{"event_type": event_type, "payload": payload or {}, **fields}], actor="test")[0]


LISTENER = """
id: on-pr
triggers:
  - type: event
    event: pr_opened
    filters: {repo: "acme/*", "pr.labels": [bug, security], draft: false}
    context: {team: platform}
steps:
  - id: look
    action: echo
    with:
      repo: "{{ context.repo }}"
      team: "{{ context.team }}"
      event: "{{ trigger.event_type }}"
      source: "{{ trigger.type }}"
      items: "{{ context.items }}"
"""


def test_an_event_whose_payload_matches_the_filters_starts_the_workflow_once_with_payload_over_context(live):
    apply_yaml(LISTENER)
    event = emit("pr_opened", {"repo": "acme/api", "pr": {"labels": ["ui", "bug"]}, "draft": False,
                               "items": [1, 2]}, correlation_id="ticket-7")
    emit("pr_opened", {"repo": "other/api", "pr": {"labels": ["bug"]}, "draft": False})   # repo glob fails
    emit("pr_opened", {"repo": "acme/api", "pr": {"labels": ["docs"]}, "draft": False})   # no label of the list
    emit("pr_opened", {"repo": "acme/api", "pr": {"labels": ["bug"]}, "draft": 0})        # 0 is not false
    emit("pr_opened", {"repo": "acme/api", "draft": False})                                # path missing
    (instance,) = started_by("on-pr")
    instance = finished(instance)
    assert instance.status == "completed"
    assert instance.result["look"] == {"repo": "acme/api", "team": "platform", "event": "pr_opened",
                                       "source": "event", "items": [1, 2]}
    assert instance.correlation_id == "ticket-7"
    assert instance.trigger["event_id"] == str(event.event_id)
    wait_until(lambda: Event.objects.filter(event_type="pr_opened", reacted_at__isnull=False).count() == 5,
               message="all five events to be reacted to")
    assert WorkflowInstance.objects.filter(definition__key="on-pr").count() == 1
    assert list(EventMatch.objects.filter(event=event).values_list("instance_id", flat=True)) == [instance.id]


def test_a_reaction_delivered_twice_starts_each_trigger_once(live):
    apply_yaml(LISTENER)
    apply_spec({"id": "also-on-pr", "triggers": [{"type": "event", "event": "pr_opened"}],
                "steps": [{"id": "s", "action": "noop"}]})
    event = emit("pr_opened", {"repo": "acme/x", "pr": {"labels": ["bug"]}, "draft": False})
    started_by("on-pr")
    started_by("also-on-pr")
    for _ in range(2):  # the same reaction again, twice, through the workers
        event_tasks.react.delay([str(event.event_id)])
    Event.objects.filter(event_id=event.event_id).update(reacted_at=None)  # even one that forgot it reacted
    event_tasks.react.delay([str(event.event_id)])
    wait_until(lambda: Event.objects.get(event_id=event.event_id).reacted_at is not None, message="the reaction")
    assert WorkflowInstance.objects.filter(definition__key="on-pr").count() == 1
    assert WorkflowInstance.objects.filter(definition__key="also-on-pr").count() == 1
    assert EventMatch.objects.filter(event=event, kind="started").count() == 2


def test_an_expired_event_starts_nothing_and_is_kept_as_expired(live):
    apply_spec({"id": "on-ping", "triggers": [{"type": "event", "event": "ping"}],
                "steps": [{"id": "s", "action": "noop"}]})
    old = Event.objects.create(event_type="ping", payload={}, ttl_seconds=1,
                               timestamp=timezone.now() - timezone.timedelta(seconds=5))
    # The trigger was registered before the event (reactions ignore older events), so age it too.
    from orchestration.events.models import Trigger
    Trigger.objects.update(created_at=timezone.now() - timezone.timedelta(minutes=1))
    event_tasks.react.delay([str(old.event_id)])
    wait_until(lambda: Event.objects.get(event_id=old.event_id).reacted_at is not None, message="the reaction")
    assert Event.objects.get(event_id=old.event_id).is_expired()
    assert not WorkflowInstance.objects.filter(definition__key="on-ping").exists()


def test_lifecycle_events_chain_workflows_and_carry_one_correlation_id(live):
    apply_spec({"id": "first", "steps": [{"id": "s", "action": "echo", "with": {"n": 1}, "emit": ["first.done"]}]})
    apply_spec({"id": "second", "triggers": [{"type": "event", "event": "first.done"}],
                "steps": [{"id": "s", "action": "noop"}]})
    apply_spec({"id": "third", "triggers": [{"type": "event", "event": "workflow.completed",
                                            "filters": {"workflow": "second"}}],
                "steps": [{"id": "s", "action": "echo", "with": {"from": "{{ context.workflow }}",
                                                                "status": "{{ context.status }}"}}]})
    first = finished(start("first"))
    (second,) = started_by("second")
    (third,) = started_by("third")
    third = finished(third)
    assert third.result == {"s": {"from": "second", "status": "completed"}}
    assert {first.correlation_id, second.correlation_id, third.correlation_id} == {str(first.id)}
    types = set(Event.objects.filter(source_instance_id=first.id).values_list("event_type", flat=True))
    assert types == {"workflow.started", "step.completed", "first.done", "workflow.completed"}
    done = Event.objects.get(source_instance_id=first.id, event_type="workflow.completed")
    assert done.payload == {"instance": str(first.id), "workflow": "first", "status": "completed",
                            "result": {"s": {"n": 1}}}


def test_blueprint_auto_spawn_starts_its_workflow_at_the_rule_priority(live):
    apply_yaml("""
name: spawner
workflows:
  - {id: fixer, steps: [{id: fix, action: echo, with: {bug: "{{ context.bug }}", p: "{{ instance.priority }}"}}]}
coordination:
  auto_spawn:
    - {on_event: bug_found, spawn: fixer, priority: high, filters: {severity: [high, critical]}, context: {bug: none}}
""")
    emit("bug_found", {"severity": "low", "bug": "typo"})
    emit("bug_found", {"severity": "critical", "bug": "crash"})
    (instance,) = started_by("fixer")
    instance = finished(instance)
    assert instance.priority == 7
    assert instance.result == {"fix": {"bug": "crash", "p": 7}}
    assert instance.trigger["source"] == "auto_spawn"


def test_a_debounced_burst_starts_one_instance_after_the_last_event_with_its_payload(live):
    apply_spec({"id": "digest", "triggers": [{"type": "event", "event": "edited",
                                             "debounce": {"key": "{{ trigger.payload.doc }}", "seconds": 3}}],
                "steps": [{"id": "s", "action": "echo",
                           "with": {"doc": "{{ context.doc }}", "rev": "{{ context.rev }}"}}]})
    for rev in range(4):
        emit("edited", {"doc": "a", "rev": rev})
    emit("edited", {"doc": "b", "rev": 9})
    instances = started_by("digest", count=2)
    results = sorted(finished(i).result["s"]["doc"] + str(finished(i).result["s"]["rev"]) for i in instances)
    assert results == ["a3", "b9"]
    assert WorkflowInstance.objects.filter(definition__key="digest").count() == 2


def test_the_reconciler_sends_a_reaction_lost_between_commit_and_message(live, settings):
    apply_spec({"id": "late", "triggers": [{"type": "event", "event": "lost.one"}],
                "steps": [{"id": "s", "action": "noop"}]})
    settings.DAC_RECONCILE_READY_AFTER_SECONDS = 0
    # Stored as a publisher would, but its after-commit message never went out (the process died).
    event = Event.objects.create(event_type="lost.one", payload={}, timestamp=timezone.now())
    assert events_reconcile()["reactions_resent"] == 1
    (instance,) = started_by("late")
    assert instance.trigger["event_id"] == str(event.event_id)


def test_engine_publish_is_idempotent_with_a_derived_id(live):
    import uuid

    from django.db import transaction

    event_id = uuid.uuid4()
    for _ in range(2):
        with transaction.atomic():
            publish([Draft("once", {}, event_id=event_id)], ignore_conflicts=True)
    assert Event.objects.filter(event_type="once").count() == 1


def test_pause_resume_terminate_and_time_out_are_lifecycle_events(live):
    from orchestration import engine
    from tests.support.helpers import step_reaches

    apply_spec({"id": "lifecycle", "steps": [{"id": "gate", "action": "noop", "approval": True}]})
    instance = start("lifecycle")
    step_reaches(instance, "gate", "waiting_approval")
    engine.instance_pause(instance_id=instance.id, actor="test")
    engine.instance_resume(instance_id=instance.id, actor="test")
    engine.instance_terminate(instance_id=instance.id, actor="test", reason="enough")
    types = list(Event.objects.filter(source_instance_id=instance.id).order_by("timestamp")
                 .values_list("event_type", flat=True))
    assert types == ["workflow.started", "governance.escalation.created", "workflow.paused", "workflow.resumed",
                     "workflow.terminated", "governance.escalation.expired"]
    ended = Event.objects.get(source_instance_id=instance.id, event_type="workflow.terminated")
    assert ended.payload["error"]["message"] == "enough" and ended.correlation_id == str(instance.id)
