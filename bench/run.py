#!/usr/bin/env python
"""DAC benchmarks (DESIGN §10), each figure next to a raw Celery baseline measured in the same run.

    .venv/bin/python bench/run.py                 the benchmarks (what `make bench` runs)
    .venv/bin/python bench/run.py --profile       ... then profile the engine's per-step hot path
    .venv/bin/python bench/run.py --profile-only  only the profile
    .venv/bin/python bench/run.py --quick         smaller sizes, one repetition (a smoke run)

It uses its own database (dac_bench, created and migrated when missing) and its own Redis
database (10, flushed at start), starts its own `celery worker` (the engine's tasks plus the
raw no-op of bench/tasks.py, on the same broker and queue), and stops it at the end. Results:
a table on stdout and bench/out/latest.json. It exits 0 when a target is missed: it measures.
See bench/README.md.
"""
import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/dac"  # as dacproject/settings.py
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BENCH_DB_NAME = "dac_bench"
BENCH_REDIS_DB = "10"

LINEAR_STEPS = 50
DIAMOND_INSTANCES = 200
DIAMOND_STEPS = 5
GROUP_TASKS = 1000
APPROVALS = 200
REPS = 3
PROFILE_QUEUE = "bench-profile"  # no worker consumes it: the in-process profile drives its steps
SPY_RATE = 250  # samples/s; py-spy pauses the worker for each (blocking mode), so no sample is lost

TARGETS = {"latency_ratio": 1.5, "throughput_ratio": 0.6, "approve_resume_p95_ms": 100.0}


# --- Environment: the bench database and Redis, set before Django starts ------------------------

def _replace_path(url, path):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def bench_urls():
    """BENCH_DATABASE_URL / BENCH_REDIS_URL win; else DATABASE_URL / REDIS_URL (or the defaults)
    with the database swapped for dac_bench and Redis database 10."""
    db = os.environ.get("BENCH_DATABASE_URL") or _replace_path(
        os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, f"/{BENCH_DB_NAME}")
    rd = os.environ.get("BENCH_REDIS_URL") or _replace_path(
        os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, f"/{BENCH_REDIS_DB}")
    return db, rd


def ensure_database(db_url):
    """Create the bench database when it does not exist (connecting to `postgres` to do so)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            print(f"bench: creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def migrate(env):
    # --skip-checks: the bench needs the schema, not the URL/admin checks of a tree others may be editing.
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
                   cwd=ROOT, env=env, check=True)


# --- Workers ------------------------------------------------------------------------------------

class Worker:
    """One `celery -A dacproject worker` process in its own session, with the bench's no-op task."""

    def __init__(self, env, *, name, concurrency=2, pool=None, queues="default", conf=()):
        self.env = env
        self.conf = list(conf)
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.hostname = f"{self.name}@{platform.node()}"
        self.args = ["worker", "-l", "warning", "-n", f"{self.name}@%h", "-Q", queues, "-c", str(concurrency),
                     "--without-gossip", "--without-mingle", "--include", "bench.tasks"]
        if pool:
            self.args += ["--pool", pool]
        self.proc = None

    def start(self):
        OUT.mkdir(parents=True, exist_ok=True)
        log = open(OUT / f"worker-{self.name.split('-')[0]}.log", "w")
        if self.conf:  # what-if: Celery settings overridden in the worker process only (bench/worker.py)
            command = [sys.executable, "-m", "bench.worker", *self.conf, "--", *self.args[1:]]
        else:
            command = [sys.executable, "-m", "celery", "-A", "dacproject", *self.args]
        self.proc = subprocess.Popen(command, cwd=ROOT,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        from dacproject.celery import app

        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[self.hostname], timeout=0.5):
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.hostname} exited ({self.proc.returncode}); see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.hostname} did not answer a ping in 60 s; see {log.name}")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def cpu_seconds(self):
        """user + system CPU of the worker and its pool processes so far (Linux /proc; None elsewhere)."""
        tick = os.sysconf("SC_CLK_TCK")
        try:
            pids, total = [self.proc.pid], 0
            while pids:
                pid = pids.pop()
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
                for task in Path(f"/proc/{pid}/task").iterdir():  # children of every thread
                    pids += [int(c) for c in (task / "children").read_text().split()]
            return total / tick
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # warm shutdown: the main process stops its pool children
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# --- Small helpers --------------------------------------------------------------------------------

def _db_errors():
    from django.db import InterfaceError, OperationalError

    return OperationalError, InterfaceError


def wait_until(predicate, *, timeout, interval=0.05, what="condition"):
    """Poll `predicate`; a dropped database connection (someone restarted PostgreSQL) is reopened."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except _db_errors():
            connection.close()
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def resilient(measure, tries=3):
    """Run one measurement; if the database went away under it (this machine is shared, and
    test suites restart PostgreSQL), wait a little and measure again."""
    from django.db import connection

    for attempt in range(1, tries + 1):
        try:
            return measure()
        except _db_errors() as exc:
            if attempt == tries:
                raise
            print(f"bench: database error ({str(exc).strip()[:80]}); measuring again")
            connection.close()
            time.sleep(3)


def median(values):
    return statistics.median(values) if values else None


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def ms(seconds):
    return seconds * 1000.0


def rnd(value, digits=3):
    return None if value is None else round(value, digits)


# --- Workflows ----------------------------------------------------------------------------------

def linear_spec(wf_id, n, queue=None):
    steps = []
    for i in range(n):
        step = {"id": f"s{i:02d}", "action": "noop"}
        if i:
            step["depends_on"] = [f"s{i - 1:02d}"]
        if queue:
            step["queue"] = queue
        steps.append(step)
    return {"id": wf_id, "steps": steps}


DIAMOND = {"id": "bench-diamond", "steps": [
    {"id": "a", "action": "noop"},
    {"id": "b", "action": "noop", "depends_on": ["a"]},
    {"id": "c", "action": "noop", "depends_on": ["a"]},
    {"id": "d", "action": "noop", "depends_on": ["a"]},
    {"id": "e", "action": "noop", "depends_on": ["b", "c", "d"]},
]}

APPROVAL = {"id": "bench-approval", "steps": [
    {"id": "gate", "action": "noop", "approval": True},
    {"id": "after", "action": "noop", "depends_on": ["gate"]},
]}


def register(spec):
    import yaml

    from registry import services as registry

    compiled = registry.compile_source(yaml.safe_dump(spec, sort_keys=False), file=f"bench/{spec['id']}.yaml")
    registry.definitions_apply(compiled=compiled, actor="bench")


def reset_state(redis_client):
    """Empty the bench database's instance tables and the bench Redis database (no worker runs yet)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orchestration_workflowinstance, orchestration_event, governance_auditentry CASCADE")
    redis_client.flushdb()


def start_instance(workflow):
    from orchestration import engine

    return engine.instance_start(workflow=workflow, context={}, actor="bench")


def wait_finished(ids, *, timeout):
    from orchestration.models import WorkflowInstance
    from orchestration.states import INSTANCE_TERMINAL

    ids = list(ids)
    wait_until(lambda: WorkflowInstance.objects.filter(id__in=ids, status__in=INSTANCE_TERMINAL).count() == len(ids),
               timeout=timeout, interval=0.05, what=f"{len(ids)} instance(s) to finish")
    bad = WorkflowInstance.objects.filter(id__in=ids).exclude(status="completed").values_list("id", "status", "error")
    if bad:
        raise RuntimeError(f"instances did not complete: {list(bad)[:3]}")


# --- (a) per-step latency ---------------------------------------------------------------------

def engine_linear():
    """One linear 50-step noop instance; per-step latency from its DB timestamps, plus where the
    time between two steps goes (from the step runs' ready/started/finished timestamps)."""
    from orchestration.models import StepRun, WorkflowInstance

    instance = start_instance("bench-linear-50")
    wait_finished([instance.id], timeout=120)
    instance = WorkflowInstance.objects.get(id=instance.id)
    total = (instance.finished_at - instance.started_at).total_seconds()
    runs = list(StepRun.objects.filter(instance=instance).order_by("step_id")
                .values_list("ready_at", "started_at", "finished_at"))
    gaps = {"finish_to_next_ready": [], "ready_to_started": [], "started_to_finished": []}
    for i, (ready, started, finished) in enumerate(runs):
        gaps["ready_to_started"].append(ms((started - ready).total_seconds()))
        gaps["started_to_finished"].append(ms((finished - started).total_seconds()))
        if i:
            gaps["finish_to_next_ready"].append(ms((ready - runs[i - 1][2]).total_seconds()))
    return ms(total) / LINEAR_STEPS, {k: median(v) for k, v in gaps.items()}


def raw_chain(redis_client):
    """A raw Celery chain of 50 no-op tasks; the last one pushes its finish time to Redis."""
    from celery import chain

    from bench.tasks import noop

    key = f"bench:chain:{uuid.uuid4().hex}"
    signature = chain(*[noop.si() for _ in range(LINEAR_STEPS - 1)], noop.si(mark=key))
    started = time.time()
    signature.apply_async()
    popped = redis_client.blpop([key], timeout=120)
    if popped is None:
        raise TimeoutError("raw chain did not finish in 120 s")
    return ms(float(popped[1]) - started) / LINEAR_STEPS


# --- (b) throughput -----------------------------------------------------------------------------

def engine_diamonds(n):
    from django.db.models import Max, Min

    from orchestration.models import WorkflowInstance

    began = time.monotonic()
    ids = [start_instance("bench-diamond").id for _ in range(n)]
    starting = time.monotonic() - began
    wait_finished(ids, timeout=600)
    span = WorkflowInstance.objects.filter(id__in=ids).aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return n * DIAMOND_STEPS / seconds, {"span_s": seconds, "starting_s": starting}


def raw_group(redis_client, n):
    from celery import group

    from bench.tasks import noop

    key = f"bench:group:{uuid.uuid4().hex}"
    signature = group(noop.si(count=(key, n)) for _ in range(n))
    started = time.time()
    signature.apply_async()
    dispatching = time.time() - started
    popped = redis_client.blpop([f"{key}:done"], timeout=600)
    if popped is None:
        raise TimeoutError("raw group did not finish in 600 s")
    seconds = float(popped[1]) - started
    return n / seconds, {"span_s": seconds, "dispatching_s": dispatching}


# --- (c) approve -> the approved step running -------------------------------------------------

def approvals(n, *, gap=0.02):
    """Park n instances on `gate`, then approve them one by one: the latency is from the moment
    step_decide returned (committed, message published) to the gate's StepRun.started_at, which a
    worker sets when it claims the step. Each approval waits for the previous step to start."""
    from orchestration import engine
    from orchestration.models import StepRun

    ids = [start_instance("bench-approval").id for _ in range(n)]
    wait_until(lambda: StepRun.objects.filter(instance_id__in=ids, step_id="gate",
                                              status="waiting_approval").count() == n,
               timeout=120, interval=0.1, what=f"{n} parked approvals")
    after_return, after_call, decide = [], [], []
    for instance_id in ids:
        called = time.time()
        engine.step_decide(instance_id=instance_id, step_id="gate", approve=True, actor="bench")
        returned = time.time()
        gate = StepRun.objects.filter(instance_id=instance_id, step_id="gate")
        started = wait_until(lambda gate=gate: gate.values_list("started_at", flat=True).first(),
                             timeout=30, interval=0.002, what="the approved step to start")
        after_return.append(ms(started.timestamp() - returned))
        after_call.append(ms(started.timestamp() - called))
        decide.append(ms(returned - called))
        time.sleep(gap)
    wait_finished(ids, timeout=120)
    return after_return, after_call, decide


# --- The benchmark run --------------------------------------------------------------------------

def run_benchmarks(env, redis_client, *, reps, diamonds, group_tasks, n_approvals, conf=()):
    worker = Worker(env, name="bench", concurrency=2, conf=conf).start()
    try:
        print(f"bench: worker {worker.hostname} up (prefork -c 2); warming up")
        resilient(engine_linear)
        raw_chain(redis_client)
        resilient(lambda: engine_diamonds(20))
        raw_group(redis_client, 100)
        resilient(lambda: approvals(5))

        samples = {"step_latency_ms": [], "raw_chain_step_latency_ms": [], "steps_per_s": [],
                   "raw_group_tasks_per_s": []}
        breakdowns = []
        spans = {"diamonds": [], "raw_group": []}
        cpu = {}  # measurement -> worker CPU seconds it used
        for rep in range(reps):
            # Interleaved, alternating which goes first, so drift on a noisy machine hits both sides.
            engine_first = rep % 2 == 0

            def latency_engine():
                value, gaps = engine_linear()
                samples["step_latency_ms"].append(value)
                breakdowns.append(gaps)

            def latency_raw():
                samples["raw_chain_step_latency_ms"].append(raw_chain(redis_client))

            def throughput_engine():
                value, info = engine_diamonds(diamonds)
                samples["steps_per_s"].append(value)
                spans["diamonds"].append(info)

            def throughput_raw():
                value, info = raw_group(redis_client, group_tasks)
                samples["raw_group_tasks_per_s"].append(value)
                spans["raw_group"].append(info)

            order = ([latency_engine, latency_raw, throughput_engine, throughput_raw] if engine_first
                     else [latency_raw, latency_engine, throughput_raw, throughput_engine])
            for measure in order:
                before = worker.cpu_seconds()
                resilient(measure)
                after = worker.cpu_seconds()
                if before is not None and after is not None:
                    cpu.setdefault(measure.__name__, []).append(after - before)
                time.sleep(0.5)
            last = {k: v[-1] for k, v in samples.items()}
            print(f"bench: rep {rep + 1}/{reps}: step {last['step_latency_ms']:.2f} ms vs raw "
                  f"{last['raw_chain_step_latency_ms']:.2f} ms; {last['steps_per_s']:.0f} steps/s vs raw "
                  f"{last['raw_group_tasks_per_s']:.0f} tasks/s")

        after_return, after_call, decide = resilient(lambda: approvals(n_approvals))
    finally:
        worker.stop()

    result = {k: median(v) for k, v in samples.items()}
    result["latency_ratio"] = result["step_latency_ms"] / result["raw_chain_step_latency_ms"]
    result["throughput_ratio"] = result["steps_per_s"] / result["raw_group_tasks_per_s"]
    result["approve_resume_p50_ms"] = percentile(after_return, 50)
    result["approve_resume_p95_ms"] = percentile(after_return, 95)
    details = {
        "samples": {k: [rnd(v) for v in vs] for k, vs in samples.items()},
        "linear_step_breakdown_ms": {k: rnd(median([b[k] for b in breakdowns])) for k in breakdowns[0]},
        # How long the bench process took to start the 200 diamonds / publish the 1,000 raw tasks,
        # within the measured span (both overlap with the worker's execution).
        "throughput_spans_s": {side: [{k: rnd(v) for k, v in info.items()} for info in infos]
                               for side, infos in spans.items()},
        # Worker CPU (main + pool processes, user + system) per step or raw task: what bounds
        # throughput on a 2-core machine that also runs PostgreSQL, Redis and the bench process.
        "worker_cpu_ms_per_step": {
            name: rnd(ms(median(values)) / count) for name, values in cpu.items()
            for count in [{"latency_engine": LINEAR_STEPS, "latency_raw": LINEAR_STEPS,
                           "throughput_engine": diamonds * DIAMOND_STEPS,
                           "throughput_raw": group_tasks}[name]]
        },
        "approve_from_call_p50_ms": rnd(percentile(after_call, 50)),
        "approve_from_call_p95_ms": rnd(percentile(after_call, 95)),
        "step_decide_p50_ms": rnd(percentile(decide, 50)),
        "step_decide_p95_ms": rnd(percentile(decide, 95)),
        "approve_resume_max_ms": rnd(max(after_return)),
        "approvals": len(after_return),
        "diamond_instances": diamonds,
        "raw_group_tasks": group_tasks,
    }
    return result, details


def print_table(result, details):
    approvals = f"{details['approvals']} approvals"
    rows = [
        ("per-step latency, linear 50 x noop (ms)", result["step_latency_ms"], result["raw_chain_step_latency_ms"],
         result["latency_ratio"], "ratio <= 1.5", result["latency_ratio"] <= TARGETS["latency_ratio"]),
        (f"throughput, {details['diamond_instances']} x 5-step diamond (steps/s)", result["steps_per_s"],
         result["raw_group_tasks_per_s"], result["throughput_ratio"], "ratio >= 0.6",
         result["throughput_ratio"] >= TARGETS["throughput_ratio"]),
        (f"approve -> step running, p50 (ms), {approvals}", result["approve_resume_p50_ms"], None, None, "-", None),
        (f"approve -> step running, p95 (ms), {approvals}", result["approve_resume_p95_ms"], None, None,
         "p95 <= 100 ms", result["approve_resume_p95_ms"] <= TARGETS["approve_resume_p95_ms"]),
    ]
    header = ("figure", "DAC", "raw Celery baseline", "ratio", "target", "result")
    cells = [header] + [
        (name, f"{dac:.2f}", "-" if raw is None else f"{raw:.2f}", "-" if ratio is None else f"{ratio:.2f}", target,
         "-" if ok is None else ("PASS" if ok else "FAIL"))
        for name, dac, raw, ratio, target, ok in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = "-+-".join("-" * w for w in widths)
    print()
    for index, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        padded = [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in pairs]
        print(" | ".join(padded))
        if index == 0:
            print(line)
    gaps = details["linear_step_breakdown_ms"]
    print(f"\nlinear step, median from DB timestamps: finish -> next ready {gaps['finish_to_next_ready']:.2f} ms, "
          f"ready -> started {gaps['ready_to_started']:.2f} ms, "
          f"started -> finished {gaps['started_to_finished']:.2f} ms")
    print(f"approve -> running measured from the call instead: p50 {details['approve_from_call_p50_ms']:.2f} ms, "
          f"p95 {details['approve_from_call_p95_ms']:.2f} ms "
          f"(step_decide itself p50 {details['step_decide_p50_ms']:.2f} ms)")
    cpu = details.get("worker_cpu_ms_per_step") or {}
    if len(cpu) == 4:
        print(f"worker CPU per step: linear {cpu['latency_engine']:.2f} ms vs raw chain {cpu['latency_raw']:.2f} ms; "
              f"diamond {cpu['throughput_engine']:.2f} ms vs raw group {cpu['throughput_raw']:.2f} ms")
    failed = [name for name, _, _, _, _, ok in rows if ok is False]
    if failed:
        print("\nTARGETS MISSED: " + "; ".join(failed))
    else:
        print("\nall targets met")


# --- Profile (1): in process, per phase, with every SQL statement counted and timed -------------

class Phases:
    """Exclusive wall time and SQL statements per phase (the innermost open phase owns them)."""

    def __init__(self):
        self.stack = []
        self.time = {}
        self.queries = {}  # phase -> {sql: [count, seconds, autocommit_writes]}
        self.commits = {}  # phase that committed -> COMMITs sent
        self.steps = 0

    @contextmanager
    def phase(self, name):
        started = time.perf_counter()
        self.stack.append([name, 0.0])
        try:
            yield
        finally:
            _, child = self.stack.pop()
            elapsed = time.perf_counter() - started
            self.time[name] = self.time.get(name, 0.0) + elapsed - child
            if self.stack:
                self.stack[-1][1] += elapsed

    def sql(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            name = self.stack[-1][0] if self.stack else "(none)"
            shape = re.sub(r'"s\d+_x\d+"', '"<savepoint>"', " ".join(sql.split()))
            if " IN (" in shape:  # fold IN lists of any length into one shape
                head, _, tail = shape.partition(" IN (")
                shape = head + " IN (...)" + tail[tail.find(")") + 1:]
            entry = self.queries.setdefault(name, {}).setdefault(shape, [0, 0.0, 0])
            entry[0] += 1
            entry[1] += elapsed
            connection = context["connection"]
            if connection.get_autocommit() and shape.split(" ", 1)[0] in ("INSERT", "UPDATE", "DELETE"):
                entry[2] += 1  # a write outside a transaction: its own commit (a WAL flush)


def profile_inprocess(redis_client, *, runs=3):
    """Drive 50-step linear instances in this process through the same calls run_step makes
    (step_claim, run_attempt, step_attempt_finish), timing each phase and counting queries.

    The steps' messages go to a queue nobody consumes, so publishing is real and measured, but
    the steps are run here, one at a time, from the dispatches the engine published."""
    from django.db import connection

    from orchestration.engine import effects as effects_mod
    from orchestration.engine import execute as execute_mod
    from orchestration.engine import step_attempt_finish, step_claim
    from orchestration.engine import steps as steps_mod

    phases = Phases()
    published = []
    original_send, original_advance = effects_mod.Effects._send, steps_mod.advance
    original_commit = connection._commit  # `connection` proxies the thread's DatabaseWrapper

    def send(self):
        with phases.phase("publish (on_commit apply_async)"):
            original_send(self)
        published.extend(self.dispatches)

    def advance(*args, **kwargs):
        with phases.phase("advance"):
            return original_advance(*args, **kwargs)

    def commit():
        owner = phases.stack[-1][0] if phases.stack else "(none)"
        phases.commits[owner] = phases.commits.get(owner, 0) + 1
        with phases.phase("COMMIT"):
            return original_commit()

    effects_mod.Effects._send, steps_mod.advance, connection._commit = send, advance, commit
    try:
        def one_run():
            published.clear()
            start_instance("bench-profile-linear-50")
            steps = 0
            while published:
                dispatch = published.pop(0)
                with phases.phase("claim (step_claim)"):
                    claim = step_claim(step_run_id=dispatch.step_run_id, attempt=dispatch.attempt,
                                       task_id=str(uuid.uuid4()), worker="bench-inprocess")
                with phases.phase("action (run_attempt)"):
                    outcome = execute_mod.run_attempt(claim)
                with phases.phase("finish (step_attempt_finish)"):
                    step_attempt_finish(claim=claim, outcome=outcome)
                steps += 1
            if steps != LINEAR_STEPS:
                raise RuntimeError(f"profile run drove {steps} steps, expected {LINEAR_STEPS}")

        one_run()  # warm-up: connections, caches
        phases.time.clear()
        phases.queries.clear()
        phases.commits.clear()
        with connection.execute_wrapper(phases.sql):
            for _ in range(runs):
                one_run()
                phases.steps += LINEAR_STEPS
    finally:
        effects_mod.Effects._send, steps_mod.advance = original_send, original_advance
        del connection._commit  # the instance attribute goes; the class's method shows again
        for key in redis_client.scan_iter(f"{PROFILE_QUEUE}*"):
            redis_client.delete(key)

    steps = phases.steps
    report = {"steps": steps, "phases": {}}
    total_ms = total_queries = total_commits = 0
    for name in ["claim (step_claim)", "action (run_attempt)", "finish (step_attempt_finish)", "advance",
                 "COMMIT", "publish (on_commit apply_async)"]:
        queries = phases.queries.get(name, {})
        n = sum(q[0] for q in queries.values())
        sql_s = sum(q[1] for q in queries.values())
        auto = sum(q[2] for q in queries.values())
        t = phases.time.get(name, 0.0)
        commits = auto + phases.commits.get(name, 0)
        total_ms += ms(t) / steps
        total_queries += n / steps
        total_commits += commits / steps
        report["phases"][name] = {
            "ms_per_step": rnd(ms(t) / steps), "queries_per_step": rnd(n / steps, 2),
            "sql_ms_per_step": rnd(ms(sql_s) / steps),
            "commits_per_step": rnd(commits / steps, 2),
            "autocommit_writes_per_step": rnd(auto / steps, 2),
            "statements": [{"sql": sql[:160], "per_step": rnd(q[0] / steps, 2), "ms_each": rnd(ms(q[1]) / q[0])}
                           for sql, q in sorted(queries.items(), key=lambda kv: -kv[1][1])],
        }
    report["total_ms_per_step"] = rnd(total_ms)
    report["queries_per_step"] = rnd(total_queries, 2)
    # Durable commits (each waits for a WAL flush): explicit COMMITs plus writes sent in autocommit mode.
    report["commits_per_step"] = rnd(total_commits, 2)
    return report


def print_inprocess(report):
    print(f"\nin-process profile: {report['steps']} steps of 50-step linear noop workflows, "
          f"{report['total_ms_per_step']:.2f} ms and {report['queries_per_step']:.1f} SQL statements per step, "
          f"{report['commits_per_step']:.1f} commits per step")
    print(f"{'phase':34} {'ms/step':>8} {'queries':>8} {'sql ms':>8} {'commits':>8} {'of which autocommit':>20}")
    for name, p in report["phases"].items():
        print(f"{name:34} {p['ms_per_step']:8.3f} {p['queries_per_step']:8.2f} {p['sql_ms_per_step']:8.3f} "
              f"{p['commits_per_step']:8.2f} {p['autocommit_writes_per_step']:20.2f}")
    for name, p in report["phases"].items():
        for s in p["statements"]:
            print(f"  [{name.split(' ')[0]}] {s['per_step']:.2f}x {s['ms_each']:.3f} ms  {s['sql'][:110]}")


# --- Profile (2): the real worker under py-spy ------------------------------------------------

SPY_BUCKETS = [  # (label, frame function, file fragment), checked innermost first
    ("publish (on_commit apply_async)", "_send", "orchestration/engine/effects.py"),
    ("advance", "advance", "orchestration/engine/advance.py"),
    ("claim (step_claim)", "step_claim", "orchestration/engine/steps.py"),
    ("action (run_attempt)", "run_attempt", "orchestration/engine/execute.py"),
    ("finish (step_attempt_finish)", "step_attempt_finish", "orchestration/engine/steps.py"),
]


def _py_spy():
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else None


def profile_worker(env, redis_client, *, runs=6, conf=(), suffix=""):
    """Run linear instances on a `--pool=solo` worker sampled by py-spy (wall clock, idle included);
    attribute the task-executing samples of the worker's main thread to phases."""
    spy = _py_spy()
    if spy is None:
        print("\nbench: py-spy is not installed (.venv/bin/pip install py-spy); skipping the worker profile")
        return None
    worker = Worker(env, name="profile", concurrency=1, pool="solo", conf=conf).start()
    target = OUT / f"profile{suffix}.speedscope.json"
    try:
        resilient(engine_linear)  # warm-up
        unprofiled = [resilient(engine_linear)[0] for _ in range(2)]
        raw = [raw_chain(redis_client) for _ in range(3)]  # the same hop, with nothing in the task
        recorder = subprocess.Popen([spy, "record", "--pid", str(worker.pid), "--idle", "--rate", str(SPY_RATE),
                                     "--format", "speedscope", "-o", str(target)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        window = time.monotonic()
        if recorder.poll() is not None:
            print(f"\nbench: py-spy failed: {recorder.stderr.read().decode()[-500:]}")
            return None
        latencies = [resilient(engine_linear)[0] for _ in range(runs)]
        window = time.monotonic() - window + 1.0
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
    finally:
        worker.stop()
    report = summarise_speedscope(target, runs * LINEAR_STEPS, median(latencies))
    report["step_latency_unprofiled_ms"] = rnd(median(unprofiled))
    report["sampled_seconds_vs_wall"] = [rnd(report.pop("sampled_seconds")), rnd(window)]
    report["raw_chain_step_latency_same_worker_ms"] = rnd(median(raw))
    return report


CROSS_CUTTING = [  # (label, predicate over the stack's (name, file) pairs)
    ("SQL round trips and driver (psycopg)", lambda names: any("/psycopg/" in f for _, f in names)),
    ("  of which opening a new DB connection", lambda names: any(n == "get_new_connection" for n, _ in names)),
    ("publishing / acking (redis, kombu)", lambda names: any("/redis/" in f or "/kombu/" in f for _, f in names)),
    ("starting the heartbeat thread (_beating)", lambda names: any(n == "start" and f.endswith("threading.py")
                                                                   for n, f in names)
     and any(n == "_beating" for n, _ in names)),
    ("Django ORM query building / model code", lambda names: any("/django/db/models/" in f for _, f in names)
     and not any("/psycopg/" in f for _, f in names)),
]


def summarise_speedscope(path, steps, step_latency_ms):
    """ms per step of each phase, from the samples taken while the worker executed a task.
    The rest of a step's latency (the hop from one task's publish to the next task's start,
    through Redis and the worker's event loop) is what is left of the measured latency."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    # The main thread is the one that ran the tasks. py-spy's weights are seconds.
    profile = max(data["profiles"], key=lambda p: sum(
        w for s, w in zip(p["samples"], p["weights"], strict=True) if any(frames[f]["name"] == "run_step" for f in s)))
    phases, cross, leaves = {}, {label: 0.0 for label, _ in CROSS_CUTTING}, {}
    sampled = sum(profile["weights"])
    for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
        # py-spy names methods `Class.method` and closures `outer.<locals>.inner`: keep the last part.
        names = [(frames[f]["name"].rsplit(".", 1)[-1], frames[f].get("file", "")) for f in stack]
        traced = [i for i, (n, _) in enumerate(names) if n in ("trace_task", "fast_trace_task")]
        if not traced:
            continue
        names = names[traced[-1]:]  # what the task did (the event loop and kombu's callbacks sit below it)
        label = "Celery task overhead (trace, prerun/postrun signals: DB close, ack)"
        if any(n == "run_step" for n, _ in names):
            label = "run_step, outside the engine calls"
            for name, file in reversed(names):
                hit = next((lbl for lbl, fn, frag in SPY_BUCKETS if fn == name and file.endswith(frag)), None)
                if hit:
                    label = hit
                    break
        phases[label] = phases.get(label, 0.0) + weight
        for cross_label, predicate in CROSS_CUTTING:
            if predicate(names):
                cross[cross_label] += weight
        leaf = names[-1]
        key = f"{leaf[0]} ({'/'.join(leaf[1].split('/')[-2:])})"
        leaves[key] = leaves.get(key, 0.0) + weight
    in_task_ms = ms(sum(phases.values())) / steps
    per_step = {k: rnd(ms(v) / steps) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])}
    per_step["between tasks (publish -> Redis -> event loop -> next task), by difference"] = rnd(
        step_latency_ms - in_task_ms)
    return {
        "steps": steps, "step_latency_ms": rnd(step_latency_ms), "in_task_ms_per_step": rnd(in_task_ms),
        "sampled_seconds": sampled,
        "ms_per_step": per_step,
        "cross_cutting_ms_per_step": {k: rnd(ms(v) / steps) for k, v in cross.items()},
        "top_leaf_frames_ms_per_step": {k: rnd(ms(v) / steps) for k, v in
                                        sorted(leaves.items(), key=lambda kv: -kv[1])[:15]},
        "speedscope_file": str(path.relative_to(ROOT)),
    }


def print_worker_profile(report):
    print(f"\nworker profile (py-spy --idle, --pool=solo): {report['steps']} steps at {report['step_latency_ms']:.2f} "
          f"ms per step ({report['step_latency_unprofiled_ms']:.2f} ms unprofiled); "
          f"{report['speedscope_file']} opens in speedscope.app")
    print(f"  a raw chain on the same worker: {report['raw_chain_step_latency_same_worker_ms']:.2f} ms per step")
    for name, value in report["ms_per_step"].items():
        print(f"  {value:6.2f} ms/step  {name}")
    print("  across phases:")
    for name, value in report["cross_cutting_ms_per_step"].items():
        print(f"  {value:6.2f} ms/step  {name}")
    print("  top leaf frames:")
    for name, value in list(report["top_leaf_frames_ms_per_step"].items())[:10]:
        print(f"  {value:6.2f} ms/step  {name}")


# --- Main ---------------------------------------------------------------------------------------

def _git_head():
    """The commit measured, and whether the engine's files differ from it (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "orchestration", "dacproject", "registry",
                                "governance"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.split("\n")
        return {"head": head, "uncommitted_changes": [line for line in dirty if line.strip()]}
    except (OSError, subprocess.SubprocessError):
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=REPS, help="repetitions of (a) and (b); medians are reported")
    parser.add_argument("--approvals", type=int, default=APPROVALS)
    parser.add_argument("--quick", action="store_true", help="1 repetition, 50 diamonds, 250 raw tasks, 40 approvals")
    parser.add_argument("--profile", action="store_true", help="also profile the per-step hot path")
    parser.add_argument("--profile-only", action="store_true", help="only the profile")
    parser.add_argument("--worker-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="what-if: override a Celery setting in the bench's workers only "
                             "(e.g. CELERY_DB_REUSE_MAX=1000); repeatable; results go to *-whatif.json, "
                             "latest.json keeps the project's own configuration")
    args = parser.parse_args()
    diamonds, group_tasks = DIAMOND_INSTANCES, GROUP_TASKS
    if args.quick:
        args.reps, args.approvals, diamonds, group_tasks = 1, 40, 50, 250

    db_url, redis_url = bench_urls()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = db_url, redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dacproject.settings")
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
    print(f"bench: database {urlsplit(db_url).path.lstrip('/')} @ {urlsplit(db_url).hostname}, "
          f"redis db {urlsplit(redis_url).path.lstrip('/')} @ {urlsplit(redis_url).hostname}")
    ensure_database(db_url)
    migrate(env)

    import django

    django.setup()
    import redis

    redis_client = redis.Redis.from_url(redis_url)
    reset_state(redis_client)
    register(linear_spec("bench-linear-50", LINEAR_STEPS))
    register(linear_spec("bench-profile-linear-50", LINEAR_STEPS, queue=PROFILE_QUEUE))
    register(DIAMOND)
    register(APPROVAL)
    OUT.mkdir(parents=True, exist_ok=True)

    output = {}
    # Only a full run of the project as configured writes latest.json: a --quick run writes
    # latest-quick.json, a what-if run (settings overridden in the bench's workers) *-whatif.json.
    suffix = ("-quick" if args.quick else "") + ("-whatif" if args.worker_conf else "")
    if args.worker_conf:
        print(f"bench: WHAT-IF run, worker settings overridden: {', '.join(args.worker_conf)}")
    if not args.profile_only:
        result, details = run_benchmarks(env, redis_client, reps=args.reps, diamonds=diamonds,
                                         group_tasks=group_tasks, n_approvals=args.approvals,
                                         conf=args.worker_conf)
        print_table(result, details)
        output = {k: rnd(v) for k, v in result.items()}
        output["targets"] = {"latency_ratio_max": TARGETS["latency_ratio"],
                             "throughput_ratio_min": TARGETS["throughput_ratio"],
                             "approve_resume_p95_ms_max": TARGETS["approve_resume_p95_ms"]}
        output["pass"] = {"latency_ratio": result["latency_ratio"] <= TARGETS["latency_ratio"],
                          "throughput_ratio": result["throughput_ratio"] >= TARGETS["throughput_ratio"],
                          "approve_resume_p95_ms": result["approve_resume_p95_ms"] <= TARGETS["approve_resume_p95_ms"]}
        output["details"] = details
        output["config"] = {"reps": args.reps, "linear_steps": LINEAR_STEPS, "diamond_instances": diamonds,
                            "raw_group_tasks": group_tasks, "approvals": args.approvals,
                            "worker": "prefork -c 2", "worker_conf_overrides": args.worker_conf,
                            "cpus": os.cpu_count(), "git_head": _git_head(),
                            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.profile or args.profile_only:
        inprocess = profile_inprocess(redis_client)
        print_inprocess(inprocess)
        (OUT / f"profile-inprocess{suffix}.json").write_text(json.dumps(inprocess, indent=2))
        spied = profile_worker(env, redis_client, conf=args.worker_conf, suffix=suffix)
        if spied:
            spied["worker_conf_overrides"] = args.worker_conf
            print_worker_profile(spied)
            (OUT / f"profile-worker{suffix}.json").write_text(json.dumps(spied, indent=2))
    if output:
        target = OUT / f"latest{suffix}.json"
        target.write_text(json.dumps(output, indent=2) + "\n")
        print(f"\nwrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
