"""The instance page's DAG: each step's status, a foreach step's item progress and what a click on a
box shows (status, attempts, times, duration, error), read in two queries whatever the size."""
from django.urls import reverse
from django.utils import timezone

from governance.admin import format_duration
from orchestration.dag import dag_svg
from orchestration.models import StepRun
from orchestration.selectors import step_item_progress

from .common import TIME_FORMAT, error_summary

RUN_FIELDS = ("id", "step_id", "status", "attempts", "attempt_base", "item_count", "worker", "started_at",
              "finished_at", "approved_by", "error")


def _time(value):
    return timezone.localtime(value).strftime(TIME_FORMAT) if value else ""


def step_details(run, progress=None, *, now):
    """What the page shows for one step run, label -> text, in that order; "_elapsed" (seconds so far)
    lets the page keep an unfinished run's duration counting."""
    attempts = run["attempts"] - run["attempt_base"]
    details = {
        "status": str(run["status"]).replace("_", " "),
        "attempts": f"{attempts} ({run['attempts']} in all)" if run["attempt_base"] else str(attempts),
    }
    if progress is not None:
        details["items"] = f"{progress[0]}/{progress[1]} done"
    details["started"] = _time(run["started_at"])
    details["finished"] = _time(run["finished_at"])
    if run["started_at"]:
        details["duration"] = format_duration(run["started_at"], run["finished_at"], now=now)
        if run["finished_at"] is None:
            details["_elapsed"] = round(max((now - run["started_at"]).total_seconds(), 0), 1)
    details["worker"] = run["worker"]
    details["approved by"] = run["approved_by"]
    details["error"] = error_summary(run["error"])
    return {label: value for label, value in details.items() if value not in ("", None)}


def instance_graph(instance):
    """(the DAG's markup, {step_id: status}) for an instance's page."""
    now = timezone.now()
    runs = list(StepRun.objects.filter(instance=instance).values(*RUN_FIELDS))
    progress = step_item_progress(instance)
    statuses = {run["step_id"]: run["status"] for run in runs}
    details = {run["step_id"]: step_details(run, progress.get(run["step_id"]), now=now) for run in runs}
    links = {run["step_id"]: reverse("admin:orchestration_steprun_change", args=[run["id"]]) for run in runs}
    svg = dag_svg(instance.version.spec, statuses, progress=progress, details=details, links=links)
    return svg, statuses
