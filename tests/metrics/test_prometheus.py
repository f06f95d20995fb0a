"""`/metrics` (DESIGN §8): seed 004's and the `dac_*` metrics, read from the database at scrape
time, parsed back with the Prometheus client's own parser; the bearer token; bounded labels."""
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from metrics.prometheus import TOP_EVENT_TYPES

from . import factories as f

# Every label any family may carry: none of them can hold an instance id.
ALLOWED_LABELS = {"workflow_name", "status", "agent_name", "approved", "level", "event_type", "quantile"}


def scrape(**headers):
    response = Client().get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(family, suffix=""):
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == family.name + suffix}


@pytest.fixture
def data(db):
    wf = f.workflow("deploy", steps=("echo", "noop"))
    done = [f.instance(wf, duration_ms=ms, tokens=(100, 20), cost="0.25") for ms in (1000, 2000, 3000)]
    failed = f.instance(wf, status="failed", duration_ms=500)
    f.instance(wf, status="running")
    f.instance(wf, duration_ms=7, ago=timezone.timedelta(days=2))  # outside the window
    for inst in done:
        f.attempt(inst, "s0", duration_ms=100)
    f.attempt(failed, "s1", status="failed", duration_ms=40)
    f.attempt(failed, "s1", status="succeeded", duration_ms=60, number=2)
    f.decision(done[0], response_ms=4000)
    f.decision(done[1], response_ms=1000, resolution="rejected")
    f.decision(done[2], response_ms=1, by="policy:auto_approve")  # not a human answer
    f.pending(failed, level="intervention")
    f.events("pr_created", 3)
    return wf


def test_exposition_names_labels_and_values(data):
    families = scrape()
    runs = families["workflow_run_duration_ms"]
    assert runs.type == "summary"
    completed = {"workflow_name": "deploy", "status": "completed"}
    assert samples(runs, "_count")[tuple(sorted(completed.items()))] == 3
    assert samples(runs, "_sum")[tuple(sorted(completed.items()))] == 6000
    assert samples(runs)[tuple(sorted({**completed, "quantile": "0.5"}.items()))] == 2000
    assert samples(runs)[tuple(sorted({**completed, "quantile": "0.95"}.items()))] == pytest.approx(2900)
    assert samples(runs, "_count")[(("status", "failed"), ("workflow_name", "deploy"))] == 1

    attempts = families["agent_execution"]
    assert attempts.type == "counter"
    assert samples(attempts, "_total") == {(("agent_name", "echo"), ("status", "succeeded")): 3,
                                           (("agent_name", "noop"), ("status", "failed")): 1,
                                           (("agent_name", "noop"), ("status", "succeeded")): 1}
    durations = families["agent_execution_duration_ms"]
    assert samples(durations, "_sum")[(("agent_name", "echo"), ("status", "succeeded"))] == 300

    approvals = families["approval_response_time_ms"]
    assert samples(approvals, "_count") == {(("approved", "true"), ("workflow_name", "deploy")): 1,
                                            (("approved", "false"), ("workflow_name", "deploy")): 1}
    assert samples(approvals)[(("approved", "true"), ("quantile", "0.5"), ("workflow_name", "deploy"))] == 4000

    instances = samples(families["dac_instances"])
    assert instances[(("status", "completed"),)] == 4 and instances[(("status", "running"),)] == 1
    assert instances[(("status", "queued"),)] == 0  # every status, so a series never vanishes
    assert samples(families["dac_escalations_pending"]) == {
        (("level", "approval"),): 0, (("level", "info"),): 0, (("level", "intervention"),): 1,
        (("level", "review"),): 0}
    assert samples(families["dac_tokens"], "_total") == {(): 360}
    assert samples(families["dac_cost_usd"], "_total") == {(): 0.75}
    assert samples(families["dac_events"], "_total") == {(("event_type", "pr_created"),): 3}

    labels = {name for family in families.values() for s in family.samples for name in s.labels}
    assert labels <= ALLOWED_LABELS


def test_event_types_are_bounded_to_the_top_n_and_other(db):
    for n in range(TOP_EVENT_TYPES + 5):
        f.events(f"type-{n:02d}", n + 1)
    events = samples(scrape()["dac_events"], "_total")
    assert len(events) == TOP_EVENT_TYPES + 1
    # The five rarest (1..5 events each) are summed into "other"; nothing is lost.
    assert events[(("event_type", "other"),)] == 1 + 2 + 3 + 4 + 5
    assert sum(events.values()) == sum(range(1, TOP_EVENT_TYPES + 6))


def test_a_scrape_is_a_fixed_number_of_queries(data):
    with CaptureQueriesContext(connection) as few:
        scrape()
    wf = f.workflow("other", steps=("echo",))
    for n in range(10):
        inst = f.instance(wf, duration_ms=n + 1, status=("completed", "failed")[n % 2])
        f.attempt(inst, "s0", duration_ms=n + 1)
        f.decision(inst, response_ms=n + 1)
        f.events(f"kind-{n}", 1)
    with CaptureQueriesContext(connection) as many:
        scrape()
    assert len(many.captured_queries) == len(few.captured_queries) <= 8


def test_an_empty_database_scrapes_cleanly(db):
    families = scrape()
    assert {"workflow_run_duration_ms", "agent_execution_duration_ms", "agent_execution", "approval_response_time_ms",
            "dac_instances", "dac_escalations_pending", "dac_tokens", "dac_cost_usd", "dac_events"} <= set(families)


def test_bearer_token_when_configured(db, settings):
    settings.DAC_METRICS_TOKEN = "scrape-secret"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Token scrape-secret"}):
        response = Client().get("/metrics", **headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated" and "Bearer" in response["WWW-Authenticate"]
    assert "dac_instances" in scrape(HTTP_AUTHORIZATION="Bearer scrape-secret")
