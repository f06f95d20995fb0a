"""The dashboard's list of workflows: every registered definition with its last day, in one query."""
from django.db.models import Q, Sum
from django.utils import timezone

from registry.models import WorkflowDefinition

from ..selectors import DAY, run_counts, success_share


def workflow_table():
    """[{key, name, type, status, runs, completed, failed, success_rate, cost_usd}] over the last 24 h,
    by key."""
    recent = Q(instances__created_at__gte=timezone.now() - DAY)
    rows = (WorkflowDefinition.objects.order_by("key")
            .annotate(**run_counts(path="instances__", within=recent),
                      cost_usd=Sum("instances__cost_usd", filter=recent, default=0))
            .values("key", "name", "type", "status", "runs", "completed", "failed", "finished", "cost_usd"))
    return [{**row, "success_rate": success_share(row["completed"], row["finished"])} for row in rows]
