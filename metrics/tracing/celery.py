"""Trace context through Celery messages: a W3C `traceparent` in each message's headers.

A message carries the span context current where it is sent. A task runs in the context its
message carried, and once it has ended an attempt it ran itself, in that attempt's instance's
(`continue_as`): so the steps, retries, reactions, child ends and freed slots it sends next
carry the instance that caused them, and anything instrumented inside an action joins the trace.
The receiving attempt's span links to it (`sent_by`); its parent is always its own instance's
derived span, since the sender may be another instance (a child that ended, an event's emitter).

Worker pool processes each start their own exporter (`worker_process_init`): a batch processor's
thread and connections are not the parent's to share; they flush on `worker_process_shutdown`.
"""
from contextvars import ContextVar
from dataclasses import dataclass

from celery import signals
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NonRecordingSpan


@dataclass(frozen=True)
class _Task:
    task_id: str
    token: object  # restores the context from before the task
    sent_by: trace.SpanContext


_task = ContextVar("dac_traced_task", default=None)


class _RequestGetter(Getter):
    """A header of a task's request: an attribute when a worker received the message, in
    `headers` when the task was applied in-process."""

    def get(self, carrier, key):
        value = getattr(carrier, key, None)
        if value is None:
            value = (getattr(carrier, "headers", None) or {}).get(key)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier):
        return []


_REQUEST = _RequestGetter()


def inject_on_publish(headers=None, **_):
    if headers is not None:
        propagate.inject(headers)


def extract_on_prerun(task=None, **_):
    received = propagate.extract(task.request, getter=_REQUEST)
    _task.set(_Task(task.request.id, otel_context.attach(received),
                    trace.get_current_span(received).get_span_context()))


def reset_on_postrun(**_):
    running = _task.get()
    if running is not None:
        _task.set(None)
        otel_context.detach(running.token)


def sent_by():
    """The span context the running task's message came with (None outside a task, or invalid)."""
    running = _task.get()
    return running.sent_by if running is not None else None


def continue_as(span_context, *, ran_by):
    """In the task `ran_by` (the attempt's task id), make `span_context` current until the task ends:
    what it sends next carries it. Another task (a reconciler recovering attempts of dead tasks,
    a child's end closing its parent's step) keeps its message's context; outside a task (a web
    request) nothing would end the context, so nothing changes."""
    running = _task.get()
    if running is not None and running.task_id == ran_by:
        otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span_context), otel_context.Context()))


def _start_process_exporter(**_):
    from . import enable
    from .spans import Emitter

    enable(Emitter.otlp())


def _flush_process_exporter(**_):
    from . import disable

    disable()


_MESSAGES = ((signals.before_task_publish, inject_on_publish), (signals.task_prerun, extract_on_prerun),
             (signals.task_postrun, reset_on_postrun))
_POOL_PROCESSES = ((signals.worker_process_init, _start_process_exporter),
                   (signals.worker_process_shutdown, _flush_process_exporter))


def connect(*, pool_processes=False):
    for signal, handler in _MESSAGES + (_POOL_PROCESSES if pool_processes else ()):
        signal.connect(handler, weak=False, dispatch_uid=_uid(handler))


def disconnect():
    for signal, handler in _MESSAGES + _POOL_PROCESSES:
        signal.disconnect(handler, dispatch_uid=_uid(handler))


def _uid(handler):
    return f"dac-tracing-{handler.__name__}"
