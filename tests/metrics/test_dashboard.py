"""The dashboard's pages and the JSON they poll (`/dashboard/`): staff only, the figures and series
on known data, a number of queries that does not grow with the instances, the live instance view."""
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration.dag import status_colours
from orchestration.models import StepRun, WorkflowInstance

from . import factories as f

HOUR = timezone.timedelta(hours=1)


@pytest.fixture
def staff(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client = Client()
    client.force_login(User.objects.create_user("watcher", password="pw-watcher-123", is_staff=True))
    return client


@pytest.fixture
def deploy(db):
    """Runs spread over the last day: 3 an hour ago (2 completed in 1 and 3 s, 1 failed), 1 five
    hours ago (completed, with cost), 1 two days ago (outside the last day)."""
    wf = f.workflow("deploy")
    f.instance(wf, ago=HOUR + timezone.timedelta(minutes=1), duration_ms=1000)
    f.instance(wf, ago=HOUR + timezone.timedelta(minutes=2), duration_ms=3000)
    f.instance(wf, ago=HOUR + timezone.timedelta(minutes=3), status="failed", duration_ms=10,
               error={"type": "Boom", "message": "disk full"})
    f.instance(wf, ago=5 * HOUR, duration_ms=500, tokens=(100, 20), cost="0.25")
    f.instance(wf, ago=48 * HOUR, duration_ms=500)
    return wf


def hour_of(moment):
    return timezone.localtime(moment).replace(minute=0, second=0, microsecond=0)


def test_the_home_page_is_the_dashboard_and_it_wants_a_staff_login(client, db):
    assert client.get("/")["Location"] == "/dashboard/"
    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=/dashboard/")
    assert client.get("/dashboard/data/overview.json").status_code == 403


def test_a_user_who_is_not_staff_sees_no_figures(db):
    wf = f.workflow("deploy")
    inst = f.instance(wf)
    client = Client()
    client.force_login(User.objects.create_user("outsider"))
    for page in ("/dashboard/", "/dashboard/workflows/", "/dashboard/workflows/deploy/",
                 f"/dashboard/instances/{inst.id}/"):
        assert client.get(page).status_code == 302, page
    for data in ("/dashboard/data/overview.json", "/dashboard/workflows/deploy/data.json",
                 f"/dashboard/instances/{inst.id}/data.json"):
        response = client.get(data)
        assert response.status_code == 403 and response.json()["error"]["code"] == "not_authenticated", data


def test_the_overview_page_carries_its_data_and_links_to_everything(staff, deploy, settings):
    settings.DAC_FLOWER_URL = "http://flower.example:5555/"
    page = staff.get("/dashboard/").content.decode()
    for href in ("/admin/governance/escalation/", "/admin/", "/api/docs/", "http://flower.example:5555/",
                 "/dashboard/workflows/"):
        assert f'href="{href}' in page, href
    assert 'id="dac-data"' in page and "uPlot.iife.min.js" in page
    assert "//cdn" not in page and "https://" not in page  # every asset is the project's own


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def test_the_overview_series_counts_runs_and_failures_per_hour(staff, deploy):
    body = staff.get("/dashboard/data/overview.json").json()
    points = body["series"]["points"]
    assert body["series"]["unit"] == "hour" and len(points) == 24
    assert points[-1]["t"] == iso(hour_of(timezone.now()))
    day_ago = hour_of(timezone.now()) - 23 * HOUR
    expected_runs, expected_failed = Counter(), Counter()
    for inst in WorkflowInstance.objects.filter(created_at__gte=day_ago):
        expected_runs[iso(hour_of(inst.created_at))] += 1
        expected_failed[iso(hour_of(inst.created_at))] += inst.status == "failed"
    assert {p["t"]: p["runs"] for p in points if p["runs"]} == dict(expected_runs)
    assert {p["t"]: p["failed"] for p in points if p["failed"]} == {t: n for t, n in expected_failed.items() if n}
    assert sum(p["runs"] for p in points) == 4  # the run of two days ago is outside
    assert body["last_24h"] == {"runs": 4, "completed": 3, "failed": 1}
    assert body["recent_failures"][0]["error"] == "disk full"
    assert [(row["type"], row["cost_usd"]) for row in body["cost_by_type"]] == [("operations", "0.250000")]


def test_the_overview_data_costs_the_same_queries_whatever_the_number_of_runs(staff, deploy):
    with CaptureQueriesContext(connection) as few:
        staff.get("/dashboard/data/overview.json")
    for _ in range(20):
        f.instance(deploy, ago=2 * HOUR, duration_ms=100, status="failed", error={"message": "again"})
    with CaptureQueriesContext(connection) as many:
        staff.get("/dashboard/data/overview.json")
    assert len(many) == len(few)


def test_a_workflow_page_shows_its_figures_per_range(staff, deploy):
    page = staff.get("/dashboard/workflows/deploy/?range=24h").content.decode()
    assert 'id="chart-duration"' in page and 'class="dac-range current" id="range-24h"' in page
    day = staff.get("/dashboard/workflows/deploy/data.json?range=24h").json()
    assert (day["runs"], day["completed"], day["failed"]) == (4, 3, 1)
    assert day["duration_ms"]["p50"] == 1000.0
    assert len(day["series"]["points"]) == 24
    month = staff.get("/dashboard/workflows/deploy/data.json?range=30d").json()
    assert month["runs"] == 5 and month["series"]["unit"] == "day" and len(month["series"]["points"]) == 30
    assert sum(p["runs"] for p in month["series"]["points"]) == 5
    # An unknown range is the default one, not an error page.
    assert staff.get("/dashboard/workflows/deploy/data.json?range=1y").json()["range"] == "7d"


def test_an_unknown_workflow_or_instance_is_a_404(staff, db):
    assert staff.get("/dashboard/workflows/nope/").status_code == 404
    response = staff.get("/dashboard/workflows/nope/data.json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    missing = "00000000-0000-0000-0000-000000000000"
    assert staff.get(f"/dashboard/instances/{missing}/").status_code == 404
    assert staff.get(f"/dashboard/instances/{missing}/data.json").json()["error"]["code"] == "not_found"


def test_the_workflow_list_has_every_definition_with_its_last_day(staff, deploy):
    f.workflow("idle")
    page = staff.get("/dashboard/workflows/").content.decode()
    assert 'href="/dashboard/workflows/deploy/"' in page and 'href="/dashboard/workflows/idle/"' in page
    assert "75 %" in page  # 3 of 4 finished runs of the last day completed


def test_the_live_instance_view_draws_the_dag_coloured_by_step_status(staff, db):
    wf = f.workflow("pipeline", steps=("echo", "noop"))
    inst = f.instance(wf, status="running", duration_ms=None)
    StepRun.objects.create(instance=inst, step_id="s0", status="completed", attempts=1,
                           started_at=timezone.now() - HOUR, finished_at=timezone.now())
    StepRun.objects.create(instance=inst, step_id="s1", status="running", attempts=1, started_at=timezone.now())
    page = staff.get(f"/dashboard/instances/{inst.id}/").content.decode()
    assert f'data-url="/dashboard/instances/{inst.id}/data.json"' in page and 'data-finished="false"' in page
    state = staff.get(f"/dashboard/instances/{inst.id}/data.json").json()
    assert (state["status"], state["finished"]) == ("running", False)
    assert 'data-step="s1" data-status="running"' in state["svg"]
    assert status_colours("running")[0] in state["svg"]
    assert [s["step_id"] for s in state["steps"]] == ["s0", "s1"]
    assert state["steps"][0]["duration_s"] == 3600.0
