"""Governance figures (DESIGN §10): escalation created -> webhook notification received by a local
receiver, and instance starts per second from several threads (every start writes an audit row,
so this shows whether the audit log serialises the engine)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .common import percentile, wait_until

NOTIFICATIONS = 200
START_THREADS = 4
STARTS_PER_THREAD = 100
ONE_STEP = {"id": "bench-one-step", "steps": [{"id": "a", "action": "noop"}]}


class Receiver:
    """A local webhook receiver: the arrival time of each escalation's `created` notification."""

    def __init__(self):
        arrivals = self.arrivals = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.headers.get("X-DAC-Event") == "governance.escalation.created":
                    arrivals.setdefault(body["escalation"]["id"], time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def stop(self):
        self.server.shutdown()


def notify_latencies(n=NOTIFICATIONS):
    """n escalations, each from an instance whose first step needs approval; latency from the
    escalation's commit-time creation to the receiver's arrival, in ms."""
    import yaml

    from governance.escalations.models import Escalation
    from orchestration import engine
    from registry import services as registry

    receiver = Receiver()
    try:
        blueprint = {"name": "bench-governance", "workflows": [
            {"id": "bench-notify", "steps": [{"id": "gate", "action": "noop", "approval": True}]}],
            "governance": {"notifications": [{"channel": "webhook", "url": receiver.url, "levels": ["approval"]}]}}
        compiled = registry.compile_source(yaml.safe_dump(blueprint), file="bench/governance.yaml")
        registry.definitions_apply(compiled=compiled, actor="bench")
        ids = [engine.instance_start(workflow="bench-notify", context={}, actor="bench").id for _ in range(n)]
        wait_until(lambda: len(receiver.arrivals) >= n, timeout=120, interval=0.05, what=f"{n} notifications")
        created = dict(Escalation.objects.filter(instance_id__in=ids).values_list("id", "created_at"))
        return [1000 * (receiver.arrivals[str(e)] - at.timestamp()) for e, at in created.items()]
    finally:
        receiver.stop()


def parallel_starts(threads=START_THREADS, per_thread=STARTS_PER_THREAD):
    """Instances started per second by `threads` threads at once (each start: its rows, its
    dispatch and its audit row, in one transaction)."""
    from django.db import connection

    from orchestration import engine

    barrier = threading.Barrier(threads + 1)

    def starter():
        barrier.wait()
        try:
            for _ in range(per_thread):
                engine.instance_start(workflow=ONE_STEP["id"], context={}, actor="bench")
        finally:
            connection.close()

    workers = [threading.Thread(target=starter) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return threads * per_thread / (time.perf_counter() - started)


def summary(samples):
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95)}
