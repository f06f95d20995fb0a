"""OpenTelemetry traces from a real worker process, exported over OTLP/HTTP to a local collector."""
import calendar
import gzip
from http.server import BaseHTTPRequestHandler

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from metrics.tracing import ids
from orchestration import engine
from orchestration.models import StepAttempt
from tests.support.helpers import apply_spec, finished, step, wait_until
from tests.support.stub_server import LocalHTTPServer

pytestmark = pytest.mark.integration

TRACEPARENT = "python:tests.support.pyactions.traceparent"


class Collector(LocalHTTPServer):
    """Receives OTLP/HTTP exports on /v1/traces: keeps each span with its resource's attributes."""

    def __init__(self):
        super().__init__()
        self.spans = []  # [(resource attributes, span)]

    def _handler(collector):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                    resource = attributes(resource_spans.resource)
                    collector.spans.extend((resource, span) for scope in resource_spans.scope_spans
                                           for span in scope.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler


def attributes(item):
    values = {}
    for pair in item.attributes:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


def ns(moment):
    return calendar.timegm(moment.utctimetuple()) * 10**9 + moment.microsecond * 1000


def test_a_workers_spans_share_the_correlations_trace_and_its_messages_carry_the_instance_context(live):
    apply_spec({"id": "traced-remote", "steps": [
        {"id": "a", "action": TRACEPARENT, "queue": "traced"},
        {"id": "b", "action": TRACEPARENT, "with": {"fail_first": True}, "depends_on": ["a"], "queue": "traced",
         "retry": {"max_attempts": 2, "backoff": "fixed", "base_seconds": 0.1, "jitter": False}},
    ]})
    trace_id = ids.trace_id("order-77").to_bytes(16, "big")
    with Collector() as collector:
        worker = live.start(queues="traced", concurrency=1, env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "dac-traced-worker",
            "OTEL_BSP_SCHEDULE_DELAY": "100"})
        try:
            instance = finished(engine.instance_start(workflow="traced-remote", context={}, actor="test",
                                                      origin=engine.Origin(correlation_id="order-77")))
            wait_until(lambda: len([s for _, s in collector.spans if s.trace_id == trace_id]) >= 4,
                       message="the instance's span and its three attempt spans")
        finally:
            live.quiesce()
            live.stop(worker)
    assert instance.status == "completed"
    traced = [(resource, span) for resource, span in collector.spans if span.trace_id == trace_id]
    assert {resource["service.name"] for resource, _ in traced} == {"dac-traced-worker"}
    spans = sorted((span for _, span in traced), key=lambda s: (s.name, attributes(s).get("dac.attempt.number", 0)))
    assert [s.name for s in spans] == ["instance traced-remote", "step a", "step b", "step b"]
    root, a, b1, b2 = spans
    instance_span_id = ids.instance_span_id(instance.id).to_bytes(8, "big")
    assert (root.span_id, root.parent_span_id) == (instance_span_id, b"")
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (ns(instance.started_at), ns(instance.finished_at))
    assert {s.parent_span_id for s in (a, b1, b2)} == {instance_span_id}
    assert [(attributes(s)["dac.attempt.status"], attributes(s)["dac.attempt.worker"]) for s in (a, b1, b2)] == [
        ("succeeded", worker), ("failed", worker), ("succeeded", worker)]
    first_try = StepAttempt.objects.get(step_run=step(instance, "b"), number=1)
    assert (b1.start_time_unix_nano, b1.end_time_unix_nano) == (ns(first_try.started_at), ns(first_try.finished_at))
    # The first message came from this untraced process; the retry went out of the worker, in the
    # context of the instance whose attempt it had just ended.
    assert step(instance, "a").output == {}
    assert step(instance, "b").output == {"traceparent": f"00-{trace_id.hex()}-{instance_span_id.hex()}-01"}
