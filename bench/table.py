"""The DESIGN §10 targets and the table bench/run.py prints: figure, DAC, raw baseline, ratio,
target, PASS/FAIL."""
from . import governance, parked, resources

# key in latest.json -> (comparison, bound): the DESIGN §10 targets.
TARGETS = {
    "latency_ratio": ("<=", 1.5),
    "throughput_ratio": (">=", 0.6),
    "approve_resume_p95_ms": ("<=", 100.0),
    "events_per_s": (">=", 1667.0),
    "event_starts_per_s": (">=", 200.0),
    "spawn_roundtrip_p95_ms": ("<=", 50.0),
    "context_read_p99_ms": ("<=", 1.0),
    "notify_p95_ms": ("<=", 2000.0),
    "max_concurrent_violations": ("<=", 0),
    "search_p95_ms": ("<=", 20.0),
    "worker_loss_recovery_s": ("<=", 10.0),
    "parked_held_tasks": ("<=", 0),
    "parked_10k_completed": (">=", parked.PARKED),  # all of them; a --quick run parks fewer
}


def met(result, key):
    op, bound = TARGETS[key]
    return result[key] <= bound if op == "<=" else result[key] >= bound


def target_text(key):
    op, bound = TARGETS[key]
    return f"{'ratio ' if 'ratio' in key else ''}{op} {bound:g}"


def print_table(result, details):
    approvals = f"{details['approvals']} approvals"
    sizes = details["coordination_sizes"]
    rows = [
        ("per-step latency, linear 50 x noop (ms)", result["step_latency_ms"], result["raw_chain_step_latency_ms"],
         result["latency_ratio"], target_text("latency_ratio"), met(result, "latency_ratio")),
        (f"throughput, {details['diamond_instances']} x 5-step diamond (steps/s)", result["steps_per_s"],
         result["raw_group_tasks_per_s"], result["throughput_ratio"], target_text("throughput_ratio"),
         met(result, "throughput_ratio")),
        (f"approve -> step running, p50 (ms), {approvals}", result["approve_resume_p50_ms"], None, None, "-", None),
        (f"approve -> step running, p95 (ms), {approvals}", result["approve_resume_p95_ms"], None, None,
         target_text("approve_resume_p95_ms"), met(result, "approve_resume_p95_ms")),
        (f"events published/s, bulk API ({sizes['event_batches']} x 1,000) vs raw INSERT", result["events_per_s"],
         result["raw_insert_events_per_s"], result["events_ratio"], target_text("events_per_s"),
         met(result, "events_per_s")),
        (f"instance starts/s from {sizes['triggered']} events vs raw group", result["event_starts_per_s"],
         result["raw_group_tasks_per_s"], result["event_starts_ratio"], target_text("event_starts_per_s"),
         met(result, "event_starts_per_s")),
        (f"spawn(wait) round trip p95 (ms), {sizes['roundtrips']} vs raw chain of 2", result["spawn_roundtrip_p95_ms"],
         result["raw_chain2_p95_ms"], result["spawn_roundtrip_ratio"], target_text("spawn_roundtrip_p95_ms"),
         met(result, "spawn_roundtrip_p95_ms")),
        (f"shared context read p99 (ms), {sizes['reads']} vs raw Redis GET", result["context_read_p99_ms"],
         result["raw_redis_get_p99_ms"], result["context_read_ratio"], target_text("context_read_p99_ms"),
         met(result, "context_read_p99_ms")),
        (f"escalation -> webhook received p95 (ms), {sizes['notifications']} escalations", result["notify_p95_ms"],
         None, None, target_text("notify_p95_ms"), met(result, "notify_p95_ms")),
        (f"instance starts/s, {governance.START_THREADS} threads at once (audited)", result["parallel_starts_per_s"],
         None, None, "-", None),
        (f"{sizes['capped_starts']} starts vs max_concurrent {resources.CAP}: violations",
         result["max_concurrent_violations"], None, None, target_text("max_concurrent_violations"),
         met(result, "max_concurrent_violations") and result["max_concurrent_lost"] == 0),
        (f"{sizes['capped_starts']} starts vs max_concurrent {resources.CAP}: all done (s)",
         result["max_concurrent_all_done_s"], None, None, "-", None),
        (f"capability search / free-text match p95 (ms), {sizes['search_definitions']:,} definitions",
         result["search_p95_ms"], None, None, target_text("search_p95_ms"), met(result, "search_p95_ms")),
        (f"whole worker killed mid-step -> instance completed, worst of {sizes['loss_reps']} (s)",
         result["worker_loss_recovery_s"], None, None, target_text("worker_loss_recovery_s"),
         met(result, "worker_loss_recovery_s")),
        (f"{sizes['parked']:,} parked on approvals: tasks the worker holds", result["parked_held_tasks"], None, None,
         target_text("parked_held_tasks"), met(result, "parked_held_tasks")),
        (f"{sizes['parked']:,} parked, then all approved: completed", result["parked_10k_completed"], None, None,
         target_text("parked_10k_completed"), met(result, "parked_10k_completed")),
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
