"""OpenTelemetry traces (metrics.tracing): instances run through the real engine in this process,
their spans caught by the SDK's in-memory exporter; the trace context through a real Celery message.

A `db` test never commits, so `traced` runs what tracing deferred to commit the way a commit would,
and nothing else (the engine's dispatches would reach the broker)."""
import calendar
import hashlib
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from celery import shared_task
from celery.app.task import Context
from django.db import transaction
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from metrics import tracing
from metrics.tracing import celery as messages
from metrics.tracing import ids
from orchestration import engine
from orchestration.engine.execute import run_attempt
from orchestration.models import StepAttempt, WorkflowInstance
from orchestration.spawning import services as spawning
from tests.orchestration.resources.inprocess import run_to_rest
from tests.support.helpers import apply_spec, start, step

PROBE_QUEUE = "dac-tracing-probe"
probed = []


@shared_task(name="tests.metrics.tracing_probe", ignore_result=True)
def tracing_probe():
    """Records the context it runs in and the one its message came with."""
    probed.append((trace.get_current_span().get_span_context(), messages.sent_by()))


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.install(exporter)
    yield exporter
    tracing.uninstall()


def tracing_callbacks(callbacks):
    return [c for c in callbacks if getattr(getattr(c, "func", None), "__module__", "").startswith("metrics.tracing")]


@pytest.fixture
def traced(django_capture_on_commit_callbacks):
    def run(work):
        with django_capture_on_commit_callbacks() as callbacks:
            result = work()
        for callback in tracing_callbacks(callbacks):
            callback()
        return result
    return run


def correlated(workflow, correlation_id):
    return engine.instance_start(workflow=workflow, context={}, actor="test",
                                 origin=engine.Origin(correlation_id=correlation_id))


def ns(moment):
    return calendar.timegm(moment.utctimetuple()) * 10**9 + moment.microsecond * 1000


def by_name(exporter):
    named = {}
    for span in exporter.get_finished_spans():
        named.setdefault(span.name, []).append(span)
    return named


def attempt_row(instance, step_id, number):
    return StepAttempt.objects.get(step_run__instance_id=instance.id, step_run__step_id=step_id, number=number)


def test_the_trace_id_of_a_correlation_is_the_head_of_its_sha256():
    assert ids.trace_id("order-42") == int(hashlib.sha256(b"order-42").hexdigest()[:32], 16)
    assert ids.instance_span_id("a") != ids.instance_span_id("b")
    assert 0 < ids.instance_span_id("a") < 2**64


def test_instances_of_one_correlation_share_a_trace_with_a_span_per_instance_and_attempt(db, spans, traced):
    apply_spec({"id": "traced-flow", "steps": [{"id": "a", "action": "noop"},
                                               {"id": "b", "action": "noop", "depends_on": ["a"]}]})
    first, second = traced(lambda: [run_to_rest(correlated("traced-flow", "order-42")) for _ in range(2)])
    assert (first.status, second.status) == ("completed", "completed")
    named = by_name(spans)
    assert sorted(named) == ["instance traced-flow", "step a", "step b"]
    assert [len(named[name]) for name in sorted(named)] == [2, 2, 2]
    assert {s.context.trace_id for ss in named.values() for s in ss} == {ids.trace_id("order-42")}
    for instance in (first, second):
        (span,) = [s for s in named["instance traced-flow"] if s.attributes["dac.instance.id"] == str(instance.id)]
        assert span.context.span_id == ids.instance_span_id(instance.id)
        assert span.parent is None
        assert (span.start_time, span.end_time) == (ns(instance.started_at), ns(instance.finished_at))
        assert dict(span.attributes) == {"dac.workflow.id": "traced-flow", "dac.workflow.version": 1,
                                         "dac.instance.id": str(instance.id), "dac.instance.status": "completed",
                                         "dac.instance.trigger": "manual", "dac.correlation_id": "order-42"}
        for step_id in "ab":
            (attempt,) = [s for s in named[f"step {step_id}"] if s.attributes["dac.instance.id"] == str(instance.id)]
            row = attempt_row(instance, step_id, 1)
            assert attempt.parent.span_id == span.context.span_id
            assert (attempt.start_time, attempt.end_time) == (ns(row.started_at), ns(row.finished_at))
            assert attempt.attributes["dac.attempt.status"] == "succeeded"
            assert attempt.attributes["dac.attempt.worker"] == "test"
            assert attempt.status.status_code == StatusCode.UNSET


def test_a_failed_then_retried_step_gives_two_attempt_spans_the_first_an_error(db, spans, traced):
    apply_spec({"id": "flaky", "steps": [{"id": "shaky", "action": "fail", "with": {"times": 1},
                                          "retry": {"max_attempts": 2, "backoff": "fixed", "base_seconds": 0.1}}]})
    instance = traced(lambda: run_to_rest(start("flaky")))
    assert instance.status == "completed"
    first, second = sorted(by_name(spans)["step shaky"], key=lambda s: s.attributes["dac.attempt.number"])
    assert (first.attributes["dac.attempt.number"], second.attributes["dac.attempt.number"]) == (1, 2)
    assert (first.attributes["dac.attempt.status"], first.attributes["error.type"]) == ("failed", "ActionError")
    assert first.status.status_code == StatusCode.ERROR
    assert (second.attributes["dac.attempt.status"], second.status.status_code) == ("succeeded", StatusCode.UNSET)
    assert "error.type" not in second.attributes
    assert first.parent.span_id == second.parent.span_id == ids.instance_span_id(instance.id)
    row = attempt_row(instance, "shaky", 1)
    assert (first.start_time, first.end_time) == (ns(row.started_at), ns(row.finished_at))


def test_a_failed_instance_span_is_an_error_and_foreach_items_have_an_attempt_span_each(db, spans, traced):
    apply_spec({"id": "items-fail", "steps": [
        {"id": "each", "foreach": "{{ [1, 2] }}", "action": "echo", "with": {"n": "{{ item }}"}},
        {"id": "boom", "action": "fail", "depends_on": ["each"]}]})
    instance = traced(lambda: run_to_rest(start("items-fail")))
    assert instance.status == "failed"
    named = by_name(spans)
    assert sorted(s.attributes["dac.attempt.item_index"] for s in named["step each"]) == [0, 1]
    (span,) = named["instance items-fail"]
    assert (span.status.status_code, span.attributes["dac.instance.status"]) == (StatusCode.ERROR, "failed")
    assert span.end_time == ns(instance.finished_at)


def test_a_spawned_child_is_in_its_parents_trace_under_the_parents_instance_span(db, spans, traced):
    apply_spec({"id": "kid", "steps": [{"id": "k", "action": "noop"}]})
    apply_spec({"id": "parent", "steps": [{"id": "call", "spawn": {"workflow": "kid", "strategy": "wait"}}]})

    def run():
        parent = start("parent")
        child = spawning.child_spawn(step_run_id=step(parent, "call").id, index=None, attempt=1)
        run_to_rest(child)
        spawning.child_ended(child_id=child.id)  # what the child's end sends after its commit
        return WorkflowInstance.objects.get(id=parent.id), WorkflowInstance.objects.get(id=child.id)

    parent, child = traced(run)
    assert (parent.status, child.status, child.parent_id) == ("completed", "completed", parent.id)
    named = by_name(spans)
    assert {s.context.trace_id for ss in named.values() for s in ss} == {ids.trace_id(str(parent.id))}
    (child_span,) = named["instance kid"]
    assert child_span.context.span_id == ids.instance_span_id(child.id)
    assert child_span.parent.span_id == ids.instance_span_id(parent.id)
    (call,) = named["step call"]  # the parked spawn step's attempt, closed by the child's end
    assert call.parent.span_id == ids.instance_span_id(parent.id)
    assert call.end_time == ns(attempt_row(parent, "call", 1).finished_at)
    assert named["step k"][0].parent.span_id == ids.instance_span_id(child.id)


def test_nothing_is_emitted_when_the_transaction_rolls_back(db, spans, django_capture_on_commit_callbacks):
    apply_spec({"id": "undone", "steps": [{"id": "a", "action": "noop"}]})
    instance = start("undone")
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            assert run_to_rest(instance).status == "completed"
            raise RuntimeError("roll the transition back")
    assert tracing_callbacks(callbacks) == []
    assert WorkflowInstance.objects.get(id=instance.id).status == "running"
    assert spans.get_finished_spans() == ()


def test_nothing_is_deferred_nor_emitted_when_tracing_is_off(db, django_capture_on_commit_callbacks):
    exporter = InMemorySpanExporter()
    tracing.install(exporter)
    tracing.uninstall()
    apply_spec({"id": "untraced", "steps": [{"id": "a", "action": "noop"}]})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert run_to_rest(start("untraced")).status == "completed"
    assert tracing_callbacks(callbacks) == []
    assert exporter.get_finished_spans() == ()


def test_an_attempt_links_to_the_span_its_tasks_message_came_from_when_another_instance_sent_it(db, spans, traced):
    apply_spec({"id": "caused", "steps": [{"id": "a", "action": "noop"}]})
    sender = SpanContext(ids.trace_id("order-7"), ids.instance_span_id("the-emitter"), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    headers = {}
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(sender)))
    try:
        messages.inject_on_publish(headers=headers)
    finally:
        otel_context.detach(token)
    messages.extract_on_prerun(task=SimpleNamespace(request=Context({"id": "the-task", **headers})))
    try:
        instance = traced(lambda: run_to_rest(correlated("caused", "order-7")))
        # The attempt ran under another task id: this task keeps sending in its message's context.
        assert trace.get_current_span().get_span_context().span_id == sender.span_id
    finally:
        messages.reset_on_postrun()
    (attempt,) = by_name(spans)["step a"]
    assert [(link.context.trace_id, link.context.span_id) for link in attempt.links] == [
        (sender.trace_id, sender.span_id)]
    assert attempt.parent.span_id == ids.instance_span_id(instance.id)
    assert by_name(spans)["instance caused"][0].links == ()


def test_a_task_that_ran_an_attempt_sends_what_follows_in_the_attempts_instance_context(db, spans, traced):
    apply_spec({"id": "onward", "steps": [{"id": "a", "action": "noop"},
                                          {"id": "b", "action": "noop", "depends_on": ["a"]}]})
    instance = start("onward")

    def run_a_in_the_task():
        claim = engine.step_claim(step_run_id=step(instance, "a").id, attempt=1, task_id="the-task", worker="test")
        engine.step_attempt_finish(claim=claim, outcome=run_attempt(claim))

    messages.extract_on_prerun(task=SimpleNamespace(request=Context({"id": "the-task"})))
    try:
        headers = {}
        messages.inject_on_publish(headers=headers)
        assert headers == {}  # its message carried no context
        traced(run_a_in_the_task)
        messages.inject_on_publish(headers=headers)
    finally:
        messages.reset_on_postrun()
    trace_id, span_id = ids.trace_id(str(instance.id)), ids.instance_span_id(instance.id)
    assert headers == {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01"}
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_real_celery_message_carries_the_traceparent_and_its_task_runs_in_that_context(spans):
    from celery.worker.request import Request

    from dacproject.celery import app

    sent = SpanContext(ids.trace_id("order-9"), ids.instance_span_id("instance-9"), is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(sent)))
    try:
        tracing_probe.apply_async(queue=PROBE_QUEUE)
    finally:
        otel_context.detach(token)
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(PROBE_QUEUE)
        try:
            message = queue.get(timeout=10)
            message.ack()
        finally:
            queue.clear()
            queue.close()
    assert message.headers["task"] == "tests.metrics.tracing_probe"
    assert message.headers["traceparent"] == f"00-{sent.trace_id:032x}-{sent.span_id:016x}-01"
    probed.clear()
    Request(message, app=app, task=tracing_probe).execute()
    (running_in, sent_by), = probed
    assert (running_in.trace_id, running_in.span_id) == (sent.trace_id, sent.span_id)
    assert (sent_by.trace_id, sent_by.span_id) == (sent.trace_id, sent.span_id)
    assert not trace.get_current_span().get_span_context().is_valid  # the task's context ended with it
    assert messages.sent_by() is None


def test_without_opentelemetry_installed_dac_starts_untraced_with_one_warning():
    script = ("import sys; sys.modules['opentelemetry'] = None\n"
              "import django; django.setup()\n"
              "from metrics import tracing; from orchestration import engine\n"
              "tracing.attempt_ended(1, None, 1); tracing.instance_ended('x')\n"
              "assert tracing._emitter is None\n")
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "DJANGO_SETTINGS_MODULE":
           "dacproject.settings"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("OpenTelemetry is not installed") == 1
