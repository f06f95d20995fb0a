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
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import coordination, discovery, governance, parked, recovery, resources  # noqa: E402 - the path above makes `bench` importable as a script
from bench.common import (  # noqa: E402
    OUT,
    ROOT,
    Worker,
    bench_urls,
    ensure_database,
    median,
    migrate,
    ms,
    percentile,
    register,
    reset_state,
    resilient,
    rnd,
)
from bench.engine import (  # noqa: E402
    APPROVAL,
    APPROVALS,
    DIAMOND,
    DIAMOND_INSTANCES,
    DIAMOND_STEPS,
    GROUP_TASKS,
    LINEAR_STEPS,
    approvals,
    engine_diamonds,
    engine_linear,
    linear_spec,
    raw_chain,
    raw_group,
)
from bench.profiling import (  # noqa: E402
    PROFILE_QUEUE,
    print_inprocess,
    print_worker_profile,
    profile_inprocess,
    profile_worker,
)
from bench.table import TARGETS, met, print_table  # noqa: E402

REPS = 3


# --- The benchmark run --------------------------------------------------------------------------

def run_benchmarks(env, redis_client, *, reps, diamonds, group_tasks, n_approvals, sizes, conf=()):
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
        coordination = measure_coordination(redis_client, sizes)
        coordination.update(measure_governance(sizes))
        coordination.update(measure_resources(sizes))
        coordination.update(measure_discovery(sizes))
        loss, loss_details = recovery.measure(env, worker, sizes["loss_reps"])
        coordination.update(loss)
        # Last: it leaves 10,000 finished instances behind.
        parking, parking_details = parked.measure(worker, sizes["parked"])
        coordination.update(parking)
    finally:
        worker.stop()

    result = {k: median(v) for k, v in samples.items()}
    result["latency_ratio"] = result["step_latency_ms"] / result["raw_chain_step_latency_ms"]
    result["throughput_ratio"] = result["steps_per_s"] / result["raw_group_tasks_per_s"]
    result["approve_resume_p50_ms"] = percentile(after_return, 50)
    result["approve_resume_p95_ms"] = percentile(after_return, 95)
    result.update(coordination)
    result["event_starts_ratio"] = result["event_starts_per_s"] / result["raw_group_tasks_per_s"]
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
        "coordination_sizes": sizes,
        "worker_loss_kills": loss_details,
        "parked": parking_details,
    }
    return result, details


def measure_coordination(redis_client, sizes):
    """(d) bulk events vs raw INSERT, (e) triggered starts (vs the raw group), (f) spawn round trip."""
    events_api = resilient(lambda: coordination.events_bulk_api(sizes["event_batches"]))
    events_raw = resilient(lambda: coordination.events_raw_insert(sizes["event_batches"]))
    starts = resilient(lambda: coordination.event_starts(sizes["triggered"]))
    spawn = coordination.summary(resilient(lambda: coordination.spawn_roundtrips(sizes["roundtrips"])))
    chain2 = coordination.summary(coordination.raw_chain_of_two(redis_client, sizes["roundtrips"]))
    reads, raw_reads = (coordination.summary(s) for s in coordination.context_reads(redis_client, sizes["reads"]))
    print(f"bench: {events_api:.0f} events/s (raw INSERT {events_raw:.0f}/s); {starts:.0f} starts/s from events; "
          f"spawn round trip p95 {spawn['p95']:.1f} ms (raw chain of 2: {chain2['p95']:.1f} ms); "
          f"context read p99 {reads['p99']:.3f} ms (raw GET {raw_reads['p99']:.3f} ms)")
    return {"events_per_s": events_api, "raw_insert_events_per_s": events_raw,
            "events_ratio": events_api / events_raw, "event_starts_per_s": starts,
            "spawn_roundtrip_p50_ms": spawn["p50"], "spawn_roundtrip_p95_ms": spawn["p95"],
            "raw_chain2_p50_ms": chain2["p50"], "raw_chain2_p95_ms": chain2["p95"],
            "spawn_roundtrip_ratio": spawn["p95"] / chain2["p95"],
            "context_read_p50_ms": reads["p50"], "context_read_p99_ms": reads["p99"],
            "raw_redis_get_p99_ms": raw_reads["p99"], "context_read_ratio": reads["p99"] / raw_reads["p99"]}


def measure_governance(sizes):
    """(g) escalation -> webhook notification; instance starts/s from parallel threads."""
    notify = governance.summary(resilient(lambda: governance.notify_latencies(sizes["notifications"])))
    starts = resilient(lambda: governance.parallel_starts(per_thread=sizes["starts_per_thread"]))
    print(f"bench: escalation -> webhook p95 {notify['p95']:.0f} ms; {starts:.0f} starts/s from "
          f"{governance.START_THREADS} threads")
    return {"notify_p50_ms": notify["p50"], "notify_p95_ms": notify["p95"], "parallel_starts_per_s": starts}


def measure_resources(sizes):
    """(k) starts against max_concurrent: never over the cap, none lost."""
    capped = resilient(lambda: resources.max_concurrent_run(sizes["capped_starts"]))
    print(f"bench: {capped['starts']} starts vs max_concurrent {resources.CAP}: most running at once "
          f"{capped['sampled_max']} sampled ({capped['samples']} samples), {capped['timeline_max']} from timestamps; "
          f"{capped['lost']} lost; all done in {capped['seconds']:.1f} s")
    return {"max_concurrent_violations": capped["violations"], "max_concurrent_sampled_max": capped["sampled_max"],
            "max_concurrent_timeline_max": capped["timeline_max"], "max_concurrent_lost": capped["lost"],
            "max_concurrent_all_done_s": capped["seconds"]}


def measure_discovery(sizes):
    """Capability search and free-text match over the registered synthetic definitions."""
    found = resilient(lambda: discovery.search_latencies(sizes["search_queries"]))
    print(f"bench: over {found['registered_definitions']} definitions: find p95 {found['find_p95_ms']:.2f} ms, "
          f"match p95 {found['match_p95_ms']:.2f} ms (corpus built in {found['corpus_build_ms']:.0f} ms)")
    return {f"search_{k}" if not k.startswith("search_") else k: v for k, v in found.items()}


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
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition, 50 diamonds, 250 raw tasks, 40 approvals, 2 kills, 1,000 parked")
    parser.add_argument("--profile", action="store_true", help="also profile the per-step hot path")
    parser.add_argument("--profile-only", action="store_true", help="only the profile")
    parser.add_argument("--worker-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="what-if: override a Celery setting in the bench's workers only "
                             "(e.g. CELERY_DB_REUSE_MAX=1000); repeatable; results go to *-whatif.json, "
                             "latest.json keeps the project's own configuration")
    args = parser.parse_args()
    diamonds, group_tasks = DIAMOND_INSTANCES, GROUP_TASKS
    sizes = {"event_batches": coordination.EVENT_BATCHES, "triggered": coordination.TRIGGERED,
             "roundtrips": coordination.ROUNDTRIPS, "reads": coordination.CONTEXT_READS,
             "notifications": governance.NOTIFICATIONS, "starts_per_thread": governance.STARTS_PER_THREAD,
             "capped_starts": resources.CAPPED_STARTS, "search_definitions": discovery.DEFINITIONS,
             "search_queries": discovery.QUERIES, "loss_reps": recovery.REPS, "parked": parked.PARKED}
    if args.quick:
        args.reps, args.approvals, diamonds, group_tasks = 1, 40, 50, 250
        sizes = {"event_batches": 2, "triggered": 200, "roundtrips": 40, "reads": 1000, "notifications": 40,
                 "starts_per_thread": 25, "capped_starts": 200, "search_definitions": 10_000, "search_queries": 100,
                 "loss_reps": 2, "parked": 1000}
    TARGETS["parked_10k_completed"] = (">=", sizes["parked"])

    db_url, redis_url = bench_urls()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = db_url, redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dacproject.settings")
    # The bench's own `python:` actions (bench/actions.py), in its processes only.
    os.environ["DAC_PYTHON_ACTION_ALLOWLIST"] = ",".join(
        filter(None, [os.environ.get("DAC_PYTHON_ACTION_ALLOWLIST"), "bench.actions"]))
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
    for spec in (coordination.ON_EVENT, coordination.CHILD, coordination.PARENT, governance.ONE_STEP,
                 resources.CAPPED, recovery.LOSS, parked.PARKED_SPEC):
        register(spec)
    loaded = discovery.register_definitions(sizes["search_definitions"])
    print(f"bench: {sizes['search_definitions']:,} discovery definitions registered"
          + (f" in {loaded:.1f} s" if loaded else " (kept from an earlier run)"))
    OUT.mkdir(parents=True, exist_ok=True)

    output = {}
    # Only a full run of the project as configured writes latest.json: a --quick run writes
    # latest-quick.json, a what-if run (settings overridden in the bench's workers) *-whatif.json.
    suffix = ("-quick" if args.quick else "") + ("-whatif" if args.worker_conf else "")
    if args.worker_conf:
        print(f"bench: WHAT-IF run, worker settings overridden: {', '.join(args.worker_conf)}")
    if not args.profile_only:
        result, details = run_benchmarks(env, redis_client, reps=args.reps, diamonds=diamonds,
                                         group_tasks=group_tasks, n_approvals=args.approvals, sizes=sizes,
                                         conf=args.worker_conf)
        print_table(result, details)
        output = {k: rnd(v) for k, v in result.items()}
        output["targets"] = {f"{key}_{'max' if op == '<=' else 'min'}": bound for key, (op, bound) in TARGETS.items()}
        output["pass"] = {key: met(result, key) for key in TARGETS}
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
