"""Coordination figures (DESIGN §10): events published per second through the bulk API against a
raw INSERT of the same rows, instances started per second by event triggers against a raw
Celery group, the spawn(wait) round trip against a raw chain of two tasks, and a shared-context
read against a raw Redis GET."""
import json
import time
import uuid

from .common import median, ms, percentile, wait_until

BULK = 1000
EVENT_BATCHES = 10
TRIGGERED = 1000
ROUNDTRIPS = 200
CONTEXT_READS = 5000

ON_EVENT = {"id": "bench-on-event", "triggers": [{"type": "event", "event": "bench.start"}],
            "steps": [{"id": "a", "action": "noop"}]}
CHILD = {"id": "bench-child", "steps": [{"id": "a", "action": "noop"}]}
PARENT = {"id": "bench-parent", "steps": [{"id": "call", "spawn": {"workflow": "bench-child"}}]}


def _api_client():
    """Django's test client with a token: the whole API stack (DRF, validation, audit), no socket."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username="bench")
    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def _events(n, event_type="bench.tick"):
    return [{"event_type": event_type, "payload": {"n": i, "source": "bench"}, "correlation_id": f"c-{i % 50}"}
            for i in range(n)]


def events_bulk_api(batches=EVENT_BATCHES):
    """POST /api/v1/events/ with lists of 1,000; events/s over every batch (nothing listens to them)."""
    client = _api_client()
    bodies = [json.dumps(_events(BULK)) for _ in range(batches)]
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/events/", data=body, content_type="application/json")
        if response.status_code != 201:
            raise RuntimeError(f"bulk publish answered {response.status_code}: {response.content[:200]}")
    return batches * BULK / (time.perf_counter() - started)


def events_raw_insert(batches=EVENT_BATCHES):
    """The same rows by one multi-row INSERT per batch, in a transaction each: the database's floor."""
    from django.db import connection, transaction
    from django.utils import timezone

    from orchestration.events.models import Event

    columns = "(event_id, event_type, source_workflow, payload, priority, correlation_id, timestamp)"
    sql = f"INSERT INTO {Event._meta.db_table} {columns} VALUES (%s, %s, '', %s::jsonb, 5, %s, %s)"
    rows = [[(uuid.uuid4(), e["event_type"], json.dumps(e["payload"]), e["correlation_id"]) for e in _events(BULK)]
            for _ in range(batches)]
    started = time.perf_counter()
    for batch in rows:
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, [(*row, now) for row in batch])
    return batches * BULK / (time.perf_counter() - started)


def event_starts(n=TRIGGERED):
    """Publish n events of a triggered type in one transaction; instances started per second, from
    the commit to the creation of the last one (reactions run on the worker, batched)."""
    from django.db.models import Max

    from orchestration.events.services import events_publish
    from orchestration.models import WorkflowInstance

    before = WorkflowInstance.objects.filter(definition__key=ON_EVENT["id"]).count()
    published = time.time()
    events_publish(events=_events(n, "bench.start"), actor="bench")
    wait_until(lambda: WorkflowInstance.objects.filter(definition__key=ON_EVENT["id"]).count() == before + n,
               timeout=600, interval=0.1, what=f"{n} triggered starts")
    last = WorkflowInstance.objects.filter(definition__key=ON_EVENT["id"]).aggregate(last=Max("created_at"))["last"]
    return n / (last.timestamp() - published)


def spawn_roundtrips(n=ROUNDTRIPS):
    """One parent at a time: its spawn step parks, the child runs, the step completes. Engine time
    per round trip = the step's finished_at - started_at (both written by the engine)."""
    from orchestration import engine
    from orchestration.models import StepRun

    samples = []
    for _ in range(n):
        parent = engine.instance_start(workflow=PARENT["id"], context={}, actor="bench")
        run = StepRun.objects.filter(instance_id=parent.id, step_id="call")
        # Timed from the database's timestamps, so the poll can be gentle on the two cores it shares.
        wait_until(lambda run=run: run.filter(status="completed").exists(), timeout=60, interval=0.02,
                   what="the spawn step to complete")
        started, finished = run.values_list("started_at", "finished_at").get()
        samples.append(ms((finished - started).total_seconds()))
    return samples


def raw_chain_of_two(redis_client, n=ROUNDTRIPS):
    """A raw chain of two no-op tasks, one at a time: dispatch -> the second task's end."""
    from celery import chain

    from bench.tasks import noop

    samples = []
    for _ in range(n):
        key = f"bench:chain2:{uuid.uuid4().hex}"
        started = time.time()
        chain(noop.si(), noop.si(mark=key)).apply_async()
        popped = redis_client.blpop([key], timeout=60)
        if popped is None:
            raise TimeoutError("raw chain of two did not finish in 60 s")
        samples.append(ms(float(popped[1]) - started))
    return samples


def summary(samples):
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "p99": percentile(samples, 99),
            "median": median(samples)}


def context_reads(redis_client, n=CONTEXT_READS):
    """`context_get` of a cached key (the read path steps and templates use), and a raw Redis GET
    of a key of the same size: per-read latencies in ms."""
    from orchestration.context.services import context_get, context_set

    context_set(scope="global", key="bench.config", value={"region": "eu", "limit": 60}, actor="bench")
    context_get(scope="global", key="bench.config")  # fills the cache
    redis_client.set("bench:raw-context", json.dumps({"value": {"region": "eu", "limit": 60}, "version": 1}))
    ours, raw = [], []
    for _ in range(n):
        started = time.perf_counter()
        context_get(scope="global", key="bench.config")
        ours.append(ms(time.perf_counter() - started))
        started = time.perf_counter()
        json.loads(redis_client.get("bench:raw-context"))
        raw.append(ms(time.perf_counter() - started))
    return ours, raw
