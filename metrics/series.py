"""Time series for the dashboard's charts: one grouped query per series (PostgreSQL buckets the
runs with date_trunc and computes the percentiles), then the empty buckets filled with zeros so
every chart has one point per hour or day of its range."""
from django.db.models import Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from orchestration.models import WorkflowInstance

from .selectors import RANGES, RUN_DURATION, TIMED, Percentile, milliseconds, run_counts, success_share

# range -> (bucket name, truncation, bucket length, number of buckets)
BUCKETS = {
    "24h": ("hour", TruncHour, timezone.timedelta(hours=1), 24),
    "7d": ("day", TruncDay, timezone.timedelta(days=1), 7),
    "30d": ("day", TruncDay, timezone.timedelta(days=1), 30),
}
assert BUCKETS.keys() == RANGES.keys()


def _bucket_start(moment, unit):
    moment = moment.astimezone(timezone.get_current_timezone())
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment


def run_series(*, period, workflow=None):
    """Runs created per hour (period 24h) or day (7d, 30d), oldest first, the current one last:
    {"range", "unit", "points": [{t, runs, completed, failed, success_rate, p50_ms, p95_ms, cost_usd}]}.
    `workflow`: one definition's runs only. One query."""
    unit, truncate, step, count = BUCKETS[period]
    first = _bucket_start(timezone.now(), unit) - step * (count - 1)
    instances = WorkflowInstance.objects.filter(created_at__gte=first)
    if workflow is not None:
        instances = instances.filter(definition=workflow)
    rows = (instances.annotate(bucket=truncate("created_at")).values("bucket")
            .annotate(**run_counts(),
                      p50=Percentile(RUN_DURATION, 0.5, filter=TIMED),
                      p95=Percentile(RUN_DURATION, 0.95, filter=TIMED),
                      cost_usd=Sum("cost_usd", default=0))
            .order_by("bucket"))
    by_bucket = {row["bucket"]: row for row in rows}
    points = []
    for index in range(count):
        moment = first + step * index
        row = by_bucket.get(moment)
        if row is None:
            points.append({"t": moment, "runs": 0, "completed": 0, "failed": 0, "success_rate": None,
                           "p50_ms": None, "p95_ms": None, "cost_usd": 0})
            continue
        points.append({"t": moment, "runs": row["runs"], "completed": row["completed"], "failed": row["failed"],
                       "success_rate": success_share(row["completed"], row["finished"]),
                       "p50_ms": milliseconds(row["p50"]), "p95_ms": milliseconds(row["p95"]),
                       "cost_usd": row["cost_usd"]})
    return {"range": period, "unit": unit, "points": points}

