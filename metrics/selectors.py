"""Reads for the metrics API and the dashboard (DESIGN §8). PostgreSQL does the arithmetic:
counts, sums in exact decimals and percentiles with `percentile_cont`, a fixed number of
queries per call whatever the number of instances."""
from django.db.models import Aggregate, Avg, Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from governance.escalations.models import Escalation
from governance.escalations.states import EscalationLevel, EscalationStatus
from orchestration.models import WorkflowInstance
from orchestration.resources.selectors import cost_ledger, resource_usage
from orchestration.states import INSTANCE_TERMINAL
from orchestration.states import InstanceStatus as I

RANGES = {"24h": timezone.timedelta(hours=24), "7d": timezone.timedelta(days=7), "30d": timezone.timedelta(days=30)}
DAY = RANGES["24h"]
FAILED = (I.FAILED, I.TIMED_OUT)
# Started or about to be, not waiting for a slot: queued instances are counted on their own.
ACTIVE = (I.PENDING, I.RUNNING, I.WAITING, I.PAUSED)
TOP_WORKFLOWS = 10
RECENT_FAILURES = 10
OLDEST_APPROVALS = 5

# Completed runs with both times: the ones whose duration counts.
TIMED = Q(status=I.COMPLETED, started_at__isnull=False, finished_at__isnull=False)
RUN_DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
RESPONSE_TIME = ExpressionWrapper(F("resolved_at") - F("created_at"), output_field=DurationField())
# A human answer: policy auto-approvals and deadline timeouts (`policy:*`) and acknowledgements
# of notices are not response times.
HUMAN_DECISION = (Q(status=EscalationStatus.RESOLVED) & ~Q(resolution="acknowledged")
                  & ~Q(resolved_by__startswith="policy:"))


class Percentile(Aggregate):
    """`percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`: interpolated, like numpy's default."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, fraction, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def run_counts(*, path="", within=Q()):
    """The Count aggregates of runs, completed, failed and finished instances; `path` leads from the
    queried model to the instances (e.g. "instances__"), `within` narrows every count."""
    def count(status_filter=Q()):
        return Count(f"{path}id" if path else "id", filter=within & status_filter)

    return {"runs": count(), "completed": count(Q(**{f"{path}status": I.COMPLETED})),
            "failed": count(Q(**{f"{path}status__in": FAILED})),
            "finished": count(Q(**{f"{path}status__in": INSTANCE_TERMINAL}))}


def local_midnight(moment):
    """The start of `moment`'s day in the current time zone."""
    return timezone.localtime(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def milliseconds(duration):
    return None if duration is None else round(duration.total_seconds() * 1000, 3)


def success_share(part, whole):
    return round(part / whole, 4) if whole else None


def workflow_metrics(*, workflow, range):  # noqa: A002 - the API's own word
    """One workflow's runs created in the last `range` (24h, 7d or 30d): counts, success rate
    (completed / finished), durations of completed runs, tokens, cost (Decimal) and the median
    time to a human approval decision. Two queries."""
    if range not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}, got {range!r}")
    until = timezone.now()
    since = until - RANGES[range]
    row = WorkflowInstance.objects.filter(definition=workflow, created_at__gte=since).aggregate(
        **run_counts(),
        p50=Percentile(RUN_DURATION, 0.5, filter=TIMED), p95=Percentile(RUN_DURATION, 0.95, filter=TIMED),
        avg=Avg(RUN_DURATION, filter=TIMED),
        tokens_in=Sum("tokens_in", default=0), tokens_out=Sum("tokens_out", default=0),
        cost_usd=Sum("cost_usd", default=0),
    )
    approval = Escalation.objects.filter(HUMAN_DECISION, workflow=workflow.key, created_at__gte=since).aggregate(
        p50=Percentile(RESPONSE_TIME, 0.5), decisions=Count("id"))
    return {
        "workflow": workflow.key, "range": range, "since": since, "until": until,
        "runs": row["runs"], "completed": row["completed"], "failed": row["failed"], "finished": row["finished"],
        "success_rate": success_share(row["completed"], row["finished"]),
        "duration_ms": {"p50": milliseconds(row["p50"]), "p95": milliseconds(row["p95"]),
                        "avg": milliseconds(row["avg"])},
        "tokens": {"in": row["tokens_in"], "out": row["tokens_out"], "total": row["tokens_in"] + row["tokens_out"]},
        "cost_usd": row["cost_usd"],
        "approval_response_ms": {"p50": milliseconds(approval["p50"]), "decisions": approval["decisions"]},
    }


def dashboard_overview():
    """The dashboard's overview (seed 000 §8.1 plus pending approvals and resource usage). A fixed
    number of queries: instance counts, today's ledger, top workflows, recent failures, pending
    approvals by level and the oldest of them, and `resource_usage()`."""
    now = timezone.now()
    day_ago = now - DAY
    midnight = local_midnight(now)
    recent = Q(created_at__gte=day_ago)
    # One pass over the active instances and the last day's, both indexed (status, created_at).
    counts = WorkflowInstance.objects.filter(Q(status__in=[*ACTIVE, I.QUEUED]) | recent).aggregate(
        active=Count("id", filter=Q(status__in=ACTIVE)), queued=Count("id", filter=Q(status=I.QUEUED)),
        **run_counts(within=recent),
    )
    today = cost_ledger(since=midnight, until=now + timezone.timedelta(minutes=1))
    return {
        "generated_at": now,
        "active": counts["active"],
        "queued": counts["queued"],
        "last_24h": {"runs": counts["runs"], "completed": counts["completed"], "failed": counts["failed"]},
        "success_rate": success_share(counts["completed"], counts["finished"]),
        "cost_today": {"cost_usd": today[0]["cost_usd"] if today else 0,
                       "tokens": (today[0]["tokens_in"] + today[0]["tokens_out"]) if today else 0},
        "top_workflows": _top_workflows(day_ago),
        "recent_failures": _recent_failures(),
        "resource_usage": resource_usage(),
        "pending_approvals": _pending_approvals(),
    }


def _top_workflows(since):
    rows = (WorkflowInstance.objects.filter(created_at__gte=since).values("definition__key")
            .annotate(**run_counts(), cost_usd=Sum("cost_usd"))
            .order_by("-runs", "definition__key")[:TOP_WORKFLOWS])
    return [{"workflow": r["definition__key"], "runs": r["runs"], "completed": r["completed"], "failed": r["failed"],
             "cost_usd": r["cost_usd"]} for r in rows]


def _recent_failures():
    rows = (WorkflowInstance.objects.filter(status__in=FAILED, finished_at__isnull=False)
            .order_by("-finished_at").values("id", "definition__key", "status", "error", "finished_at")
            [:RECENT_FAILURES])
    return [{"id": r["id"], "workflow": r["definition__key"], "status": r["status"],
             "error": (r["error"] or {}).get("message"),
             "finished_at": r["finished_at"]} for r in rows]


def _pending_approvals():
    pending = Escalation.objects.filter(status=EscalationStatus.PENDING)
    by_level = dict.fromkeys(EscalationLevel.values, 0)
    by_level.update(pending.values("level").annotate(n=Count("id")).order_by().values_list("level", "n"))
    oldest = pending.order_by("created_at").values("id", "title", "level", "workflow", "instance_id", "step_id",
                                                   "created_at")[:OLDEST_APPROVALS]
    return {"total": sum(by_level.values()), "by_level": by_level,
            "oldest": [{**row, "instance": row.pop("instance_id")} for row in oldest]}
