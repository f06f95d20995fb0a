"""Profiles of the engine's per-step hot path: in process (per phase, every SQL statement timed)
and the real worker under py-spy."""
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from .common import OUT, ROOT, Worker, median, ms, resilient, rnd, start_instance
from .engine import LINEAR_STEPS, engine_linear, raw_chain

PROFILE_QUEUE = "bench-profile"  # no worker consumes it: the in-process profile drives its steps
SPY_RATE = 250  # samples/s; py-spy pauses the worker for each (blocking mode), so no sample is lost


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
    ("claim (step_claim)", "step_claim", "orchestration/engine/transitions.py"),
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
