"""Spans of ended instances and step attempts, built from their committed database rows.

A span is emitted once what it covers has ended, after the transaction that ended it commits (a
rolled-back transition emits nothing), with the start and end times the database holds: nothing
is held open in memory, so an instance parked for hours across restarts is traced all the same.
Parents are the derived ids of `ids`; an attempt links to the span its task's message came from
when that is not its own instance (the message of another instance, a child's end, an event).
"""
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from orchestration.models import AttemptStatus, StepAttempt, WorkflowInstance
from orchestration.states import InstanceStatus

from . import celery as messages
from . import ids

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAILED_INSTANCE = (InstanceStatus.FAILED, InstanceStatus.TIMED_OUT)
# (trace id, span id) for the span being started: an instance's, whose ids are derived, not random.
_derived_ids = ContextVar("dac_derived_span_ids", default=None)


class DerivedIds(IdGenerator):
    """The SDK's random ids, except while an instance span starts with its derived ones."""

    _random = RandomIdGenerator()

    def generate_trace_id(self):
        derived = _derived_ids.get()
        return derived[0] if derived else self._random.generate_trace_id()

    def generate_span_id(self):
        derived = _derived_ids.get()
        return derived[1] if derived else self._random.generate_span_id()

    def is_trace_id_random(self):
        return _derived_ids.get() is None


class Emitter:
    """A process's spans, through its own TracerProvider (the global one is left to the application)."""

    def __init__(self, processor):
        self.provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.OTEL_SERVICE_NAME}),
                                       id_generator=DerivedIds())
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer(__name__)

    @classmethod
    def otlp(cls):
        """Batched to OTEL_EXPORTER_OTLP_ENDPOINT over OTLP/HTTP (the SDK's OTEL_BSP_* and
        OTEL_EXPORTER_OTLP_* variables for headers, timeout and compression apply)."""
        endpoint = f"{settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip('/')}/v1/traces"
        return cls(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))

    @classmethod
    def synchronous(cls, exporter):
        """Each span handed to `exporter` as it ends (tests: an InMemorySpanExporter)."""
        return cls(SimpleSpanProcessor(exporter))

    def shutdown(self):
        """Export what is still batched, then stop."""
        self.provider.shutdown()

    def instance_ended(self, instance_id):
        transaction.on_commit(partial(self.emit_instance, instance_id), robust=True)

    def attempt_ended(self, step_run_id, item_index, number):
        emit = partial(self.emit_attempt, step_run_id, item_index, number, messages.sent_by())
        transaction.on_commit(emit, robust=True)

    def emit_instance(self, instance_id):
        row = (WorkflowInstance.objects.filter(id=instance_id, finished_at__isnull=False)
               .values("id", "correlation_id", "parent_id", "status", "trigger", "error", "created_at", "started_at",
                       "finished_at", "version__number", "definition__key").first())
        if row is None:
            return  # retried since: its next end is emitted then
        trace_id = ids.trace_id(row["correlation_id"])
        parent = (_context_of(_span_context(trace_id, ids.instance_span_id(row["parent_id"]))) if row["parent_id"]
                  else otel_context.Context())  # a root, whatever the current context is
        error = row["error"] if isinstance(row["error"], dict) else {}
        attributes = _present({
            "dac.workflow.id": row["definition__key"], "dac.workflow.version": row["version__number"],
            "dac.instance.id": str(row["id"]), "dac.instance.status": row["status"],
            "dac.instance.trigger": (row["trigger"] or {}).get("type"), "dac.correlation_id": row["correlation_id"],
            "error.type": error.get("type"),
        })
        derived = _derived_ids.set((trace_id, ids.instance_span_id(row["id"])))
        try:
            span = self.tracer.start_span(f"instance {row['definition__key']}", context=parent, attributes=attributes,
                                          start_time=_ns(row["started_at"] or row["created_at"]))
        finally:
            _derived_ids.reset(derived)
        if row["status"] in _FAILED_INSTANCE:
            span.set_status(Status(StatusCode.ERROR, error.get("type") or row["status"]))
        span.end(end_time=_ns(row["finished_at"]))

    def emit_attempt(self, step_run_id, item_index, number, sent_by):
        row = (StepAttempt.objects.filter(step_run_id=step_run_id, item_index=item_index, number=number,
                                          finished_at__isnull=False)
               .values("status", "worker", "task_id", "error_type", "started_at", "finished_at", "step_run__step_id",
                       "step_run__instance_id", "step_run__instance__correlation_id",
                       "step_run__instance__definition__key").first())
        if row is None:
            return
        instance_id = row["step_run__instance_id"]
        instance = _span_context(ids.trace_id(row["step_run__instance__correlation_id"]),
                                 ids.instance_span_id(instance_id))
        links = [Link(sent_by)] if _other_span(sent_by, instance) else []
        attributes = _present({
            "dac.workflow.id": row["step_run__instance__definition__key"], "dac.instance.id": str(instance_id),
            "dac.step.id": row["step_run__step_id"], "dac.attempt.number": number,
            "dac.attempt.item_index": item_index, "dac.attempt.status": row["status"],
            "dac.attempt.worker": row["worker"], "error.type": row["error_type"],
        })
        span = self.tracer.start_span(f"step {row['step_run__step_id']}",
                                      context=_context_of(instance), links=links,
                                      attributes=attributes, start_time=_ns(row["started_at"]))
        if row["status"] == AttemptStatus.FAILED:
            span.set_status(Status(StatusCode.ERROR, row["error_type"] or None))
        span.end(end_time=_ns(row["finished_at"]))
        messages.continue_as(instance, ran_by=row["task_id"])


def _span_context(trace_id, span_id):
    # Sampled, or the SDK's parent-based sampler would drop every child of it.
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def _context_of(span_context):
    """A context with `span_context` as its only content: the parent to give, not the current one."""
    return trace.set_span_in_context(NonRecordingSpan(span_context), otel_context.Context())


def _other_span(sent_by, instance):
    return (sent_by is not None and sent_by.is_valid
            and (sent_by.trace_id, sent_by.span_id) != (instance.trace_id, instance.span_id))


def _present(attributes):
    """Attributes without their empty values (OpenTelemetry takes no None)."""
    return {key: value for key, value in attributes.items() if value is not None and value != ""}


def _ns(moment):
    """A stored timestamp in Unix nanoseconds, exactly (microseconds, as PostgreSQL keeps them)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
