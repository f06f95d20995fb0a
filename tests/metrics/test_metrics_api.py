"""`workflows/{id}/metrics/` and `dashboard/overview/` (DESIGN §8): values on known data, the
error envelope, and a number of queries that does not grow with the number of instances."""
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from orchestration.resources.config import resource_config

from . import factories as f

DAYS = timezone.timedelta(days=1)


def url(workflow, query=""):
    return f"/api/v1/workflows/{workflow}/metrics/{query}"


@pytest.fixture
def deploy(db):
    """Four completed runs of 1-4 s, one failed, one running, one 10 days old; three human
    decisions (10, 20, 30 s) and one policy auto-approval that is not a response time."""
    wf = f.workflow("deploy")
    runs = [f.instance(wf, duration_ms=ms, tokens=(100, 10), cost="0.125") for ms in (1000, 2000, 3000, 4000)]
    f.instance(wf, status="failed", duration_ms=50, error={"type": "Boom", "message": "it broke"})
    f.instance(wf, status="running")
    f.instance(wf, duration_ms=99_000, ago=10 * DAYS, tokens=(1, 1), cost="1")
    for ms in (10_000, 20_000, 30_000):
        f.decision(runs[0], response_ms=ms)
    f.decision(runs[1], response_ms=1, by="policy:auto_approve")
    return wf


def test_workflow_metrics_on_known_data(api, deploy):
    body = api.get(url("deploy", "?range=7d")).json()
    assert body["workflow"] == "deploy" and body["range"] == "7d"
    assert (body["runs"], body["completed"], body["failed"], body["finished"]) == (6, 4, 1, 5)
    assert body["success_rate"] == 0.8
    # percentile_cont interpolates: p95 of 1..4 s is 3 s + 0.85 s.
    assert body["duration_ms"] == {"p50": 2500.0, "p95": 3850.0, "avg": 2500.0}
    assert body["tokens"] == {"in": 400, "out": 40, "total": 440}
    assert body["cost_usd"] == "0.500000"  # exact, as a string
    assert body["approval_response_ms"] == {"p50": 20000.0, "decisions": 3}


def test_range_widens_the_window(api, deploy):
    body = api.get(url("deploy", "?range=30d")).json()
    assert body["runs"] == 7 and Decimal(body["cost_usd"]) == Decimal("1.5")
    assert api.get(url("deploy")).json()["range"] == "7d"  # the default


def test_no_runs_gives_nulls_not_errors(api, db):
    f.workflow("idle")
    body = api.get(url("idle", "?range=24h")).json()
    assert body["runs"] == 0 and body["success_rate"] is None
    assert body["duration_ms"] == {"p50": None, "p95": None, "avg": None} and body["cost_usd"] == "0"


def test_bad_range_is_a_400_naming_the_allowed_values(api, deploy):
    response = api.get(url("deploy", "?range=1y"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "24h, 7d, 30d" in error["details"]["range"][0]


def test_unknown_workflow_is_a_404_envelope(api, db):
    response = api.get(url("nope"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", [url("deploy"), "/api/v1/dashboard/overview/"])
def test_anonymous_is_refused_with_the_envelope(deploy, path):
    response = APIClient().get(path)
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"


def queries(api, path):
    resource_config()  # warm the process's resource-config cache, which is not per request
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(path).status_code == 200
    return len(ctx.captured_queries)


def test_workflow_metrics_queries_do_not_grow_with_instances(api, db):
    wf = f.workflow("busy")
    f.instance(wf, duration_ms=10)
    few = queries(api, url("busy"))
    for n in range(20):
        inst = f.instance(wf, duration_ms=10 + n, status="failed" if n % 3 else "completed")
        f.decision(inst, response_ms=n + 1)
    assert queries(api, url("busy")) == few


def test_overview_on_known_data(api, deploy):
    other = f.workflow("report")
    f.instance(other, status="queued")
    f.instance(other, status="timed_out", duration_ms=5, ago=2 * DAYS, error={"message": "too slow"})
    inst = f.instance(other, status="waiting")
    f.pending(inst, level="approval", ago=timezone.timedelta(hours=2))
    f.pending(inst, level="approval")
    f.pending(inst, level="review")

    body = api.get("/api/v1/dashboard/overview/").json()
    assert body["active"] == 2 and body["queued"] == 1  # running deploy + waiting report
    assert body["last_24h"] == {"runs": 8, "completed": 4, "failed": 1}
    assert body["success_rate"] == 0.8
    assert body["cost_today"]["cost_usd"] == "1.500000" and body["cost_today"]["tokens"] == 442
    assert body["top_workflows"][0] == {"workflow": "deploy", "runs": 6, "completed": 4, "failed": 1,
                                        "cost_usd": "0.500000"}
    assert [(r["workflow"], r["status"], r["error"]) for r in body["recent_failures"]] == [
        ("deploy", "failed", "it broke"), ("report", "timed_out", "too slow")]
    approvals = body["pending_approvals"]
    assert approvals["total"] == 3 and approvals["by_level"] == {"info": 0, "review": 1, "approval": 2,
                                                                 "intervention": 0}
    assert approvals["oldest"][0]["level"] == "approval" and approvals["oldest"][0]["instance"] == str(inst.id)
    assert set(body["resource_usage"]) == {"pools", "buckets", "tokens"}


def test_overview_queries_do_not_grow_with_instances(api, db):
    wf = f.workflow("busy")
    f.pending(f.instance(wf, status="waiting"))
    few = queries(api, "/api/v1/dashboard/overview/")
    for n in range(15):
        owner = f.workflow(f"busy-{n}") if n % 5 == 0 else wf
        inst = f.instance(owner, status=("failed", "waiting", "completed")[n % 3], duration_ms=n,
                          error={"message": "x"}, tokens=(n, n), cost="0.01")
        f.pending(inst, level=("approval", "review")[n % 2])
    assert queries(api, "/api/v1/dashboard/overview/") == few
