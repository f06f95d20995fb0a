"""What the dashboard's pages draw, as JSON-ready dicts (money as exact decimal strings)."""
from django.utils import timezone

from orchestration.dag import dag_svg
from orchestration.models import StepRun
from orchestration.resources.selectors import cost_ledger
from orchestration.selectors import step_item_progress
from orchestration.states import INSTANCE_TERMINAL

from .. import selectors
from ..api import jsonable
from ..series import run_series


def overview_data():
    """The overview: `dashboard_overview()`, runs per hour over the last day, and today's cost per
    workflow type."""
    now = timezone.now()
    midnight = selectors.local_midnight(now)
    return jsonable({
        **selectors.dashboard_overview(),
        "series": run_series(period="24h"),
        "cost_by_type": cost_ledger(since=midnight, until=now + timezone.timedelta(minutes=1), group_by="type"),
    })


def workflow_data(workflow, period):
    """One workflow's figures over `period` (24h, 7d, 30d) and the series behind its charts."""
    return jsonable({**selectors.workflow_metrics(workflow=workflow, range=period),
                     "series": run_series(period=period, workflow=workflow)})


def instance_live_data(instance):
    """What the live instance view redraws: the status, the DAG coloured by step status and the
    step table's rows. `finished` tells the page to stop polling."""
    runs = list(StepRun.objects.filter(instance=instance).order_by("id")
                .values("step_id", "status", "attempts", "started_at", "finished_at"))
    now = timezone.now()
    for run in runs:
        started, finished = run["started_at"], run["finished_at"]
        run["duration_s"] = round(((finished or now) - started).total_seconds(), 1) if started else None
    return jsonable({
        "id": str(instance.id),
        "status": instance.status,
        "finished": instance.status in INSTANCE_TERMINAL,
        "svg": dag_svg(instance.version.spec, {run["step_id"]: run["status"] for run in runs},
                       progress=step_item_progress(instance)),
        "steps": runs,
    })
