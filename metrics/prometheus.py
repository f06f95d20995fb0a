"""`/metrics` for Prometheus (DESIGN §8), collected from PostgreSQL at scrape time.

Every web and worker process writes its facts to the database already, so reading them there at
scrape time is correct with any number of processes and survives restarts, without the client's
multiprocess mode (per-process files to merge, lost or double-counted when a process dies).
Eight grouped queries per scrape, however many instances there are.

Durations are summaries over the last `WINDOW`: quantiles from `percentile_cont`, with `_count`
and `_sum` of the same window. A histogram's buckets are counters Prometheus expects never to fall;
counted over a sliding window they would fall as rows age out (read as resets), and counted over
all history each scrape would cost more with every run. Totals that must only grow
(`agent_execution_total`, `dac_tokens_total`, `dac_cost_usd_total`, `dac_events_total`) are counted
over all history from append-only rows. Labels are bounded: workflow and agent names come from the
registry, statuses and levels from fixed choices, event types are the `TOP_EVENT_TYPES` most
frequent plus "other"; no instance ids.
"""
import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from dacproject.api import error_body
from governance.escalations.states import EscalationLevel, EscalationStatus
from orchestration.states import INSTANCE_TERMINAL, InstanceStatus

WINDOW = timezone.timedelta(hours=1)
IN_WINDOW = f"in the last {int(WINDOW.total_seconds())} s"
QUANTILES = (0.5, 0.95, 0.99)
TOP_EVENT_TYPES = 20
OTHER = "other"

_MS = "extract(epoch FROM ({end} - {start})) * 1000"
_QUANTILE_COLUMNS = ", ".join(f"percentile_cont({q}) WITHIN GROUP (ORDER BY ms)" for q in QUANTILES)

RUNS_SQL = f"""
SELECT d.key, i.status, count(*), sum(ms), {_QUANTILE_COLUMNS}
  FROM (SELECT definition_id, status, {_MS.format(start="started_at", end="finished_at")} AS ms
          FROM orchestration_workflowinstance
         WHERE finished_at >= %s AND started_at IS NOT NULL AND status = ANY(%s)) i
  JOIN registry_workflowdefinition d ON d.id = i.definition_id
 GROUP BY 1, 2 ORDER BY 1, 2
"""

# A step's agent label: its agent, else its action, read once per (version, step) from the
# version's normalized spec rather than once per attempt.
_AGENTS_CTE = """
agents AS (
  SELECT v.id AS version_id, s->>'id' AS step_id,
         coalesce(nullif(s->>'agent', ''), nullif(s->>'action', ''), 'other') AS agent
    FROM registry_workflowversion v, jsonb_array_elements(v.spec->'steps') s
   WHERE v.id IN (SELECT version_id FROM attempts))
"""
_ATTEMPTS_FROM = """
  FROM orchestration_stepattempt a
  JOIN orchestration_steprun r ON r.id = a.step_run_id
  JOIN orchestration_workflowinstance i ON i.id = r.instance_id
"""

AGENT_DURATIONS_SQL = f"""
WITH attempts AS (
  SELECT i.version_id, r.step_id, a.status, {_MS.format(start="a.started_at", end="a.finished_at")} AS ms
  {_ATTEMPTS_FROM} WHERE a.finished_at >= %s),
{_AGENTS_CTE}
SELECT coalesce(g.agent, 'other'), t.status, count(*), sum(ms), {_QUANTILE_COLUMNS}
  FROM attempts t LEFT JOIN agents g USING (version_id, step_id)
 GROUP BY 1, 2 ORDER BY 1, 2
"""

AGENT_TOTALS_SQL = f"""
WITH attempts AS (
  SELECT i.version_id, r.step_id, a.status, count(*) AS n
  {_ATTEMPTS_FROM} WHERE a.finished_at IS NOT NULL GROUP BY 1, 2, 3),
{_AGENTS_CTE}
SELECT coalesce(g.agent, 'other'), t.status, sum(n)
  FROM attempts t LEFT JOIN agents g USING (version_id, step_id)
 GROUP BY 1, 2 ORDER BY 1, 2
"""

APPROVALS_SQL = f"""
SELECT workflow, resolution <> 'rejected', count(*), sum(ms), {_QUANTILE_COLUMNS}
  FROM (SELECT workflow, resolution, {_MS.format(start="created_at", end="resolved_at")} AS ms
          FROM governance_escalation
         WHERE resolved_at >= %s AND status = 'resolved' AND resolution <> 'acknowledged'
           AND resolved_by NOT LIKE 'policy:%%') e
 GROUP BY 1, 2 ORDER BY 1, 2
"""

INSTANCES_SQL = "SELECT status, count(*) FROM orchestration_workflowinstance GROUP BY 1"
PENDING_SQL = "SELECT level, count(*) FROM governance_escalation WHERE status = %s GROUP BY 1"
USAGE_SQL = ("SELECT coalesce(sum(tokens_in + tokens_out), 0), coalesce(sum(cost_usd), 0)"
             " FROM orchestration_usageledger")
EVENTS_SQL = f"""
SELECT CASE WHEN rank <= {TOP_EVENT_TYPES} THEN event_type ELSE '{OTHER}' END, sum(n)
  FROM (SELECT event_type, count(*) AS n, row_number() OVER (ORDER BY count(*) DESC, event_type) AS rank
          FROM orchestration_event GROUP BY 1) t
 GROUP BY 1 ORDER BY 1
"""


def _rows(cursor, sql, params=()):
    cursor.execute(sql, params)
    return cursor.fetchall()


def _summary(name, documentation, labels, rows):
    """A summary from rows of (*label values, count, sum, *quantiles)."""
    family = SummaryMetricFamily(name, documentation, labels=labels)
    width = len(labels)
    for row in rows:
        values = [str(v).lower() if isinstance(v, bool) else str(v) for v in row[:width]]
        count, total, quantiles = row[width], row[width + 1], row[width + 2:]
        family.add_metric(values, count, float(total or 0))
        for q, value in zip(QUANTILES, quantiles, strict=True):
            family.add_sample(name, {**dict(zip(labels, values, strict=True)), "quantile": str(q)}, float(value))
    return family


class DatabaseCollector:
    """Reads every metric from PostgreSQL when Prometheus scrapes."""

    def collect(self):
        since = timezone.now() - WINDOW
        terminal = sorted(str(s) for s in INSTANCE_TERMINAL)
        with connection.cursor() as cursor:
            yield _summary("workflow_run_duration_ms", f"Run time of instances that finished {IN_WINDOW}",
                           ["workflow_name", "status"], _rows(cursor, RUNS_SQL, [since, terminal]))
            yield _summary("agent_execution_duration_ms", f"Time of step attempts that finished {IN_WINDOW}",
                           ["agent_name", "status"], _rows(cursor, AGENT_DURATIONS_SQL, [since]))
            totals = CounterMetricFamily("agent_execution_total", "Finished step attempts",
                                         labels=["agent_name", "status"])
            for agent, status, n in _rows(cursor, AGENT_TOTALS_SQL):
                totals.add_metric([agent, status], n)
            yield totals
            yield _summary("approval_response_time_ms", f"Approval request to human decision, decided {IN_WINDOW}",
                           ["workflow_name", "approved"], _rows(cursor, APPROVALS_SQL, [since]))

            instances = dict.fromkeys(InstanceStatus.values, 0) | dict(_rows(cursor, INSTANCES_SQL))
            gauge = GaugeMetricFamily("dac_instances", "Workflow instances by status", labels=["status"])
            for status, n in sorted(instances.items()):
                gauge.add_metric([status], n)
            yield gauge

            pending = dict.fromkeys(EscalationLevel.values, 0) | dict(
                _rows(cursor, PENDING_SQL, [str(EscalationStatus.PENDING)]))
            gauge = GaugeMetricFamily("dac_escalations_pending", "Pending escalations by level", labels=["level"])
            for level, n in sorted(pending.items()):
                gauge.add_metric([level], n)
            yield gauge

            ((tokens, cost),) = _rows(cursor, USAGE_SQL)
            yield CounterMetricFamily("dac_tokens", "LLM tokens used (in + out)", value=float(tokens))
            yield CounterMetricFamily("dac_cost_usd", "USD spent on LLM calls", value=float(cost))

            events = CounterMetricFamily("dac_events", "Events published, by type", labels=["event_type"])
            for event_type, n in _rows(cursor, EVENTS_SQL):
                events.add_metric([event_type], n)
            yield events


# Only the database collector: one web process's own process/GC metrics would describe a single
# process out of many.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(DatabaseCollector())


def metrics_view(request):
    """Open unless DAC_METRICS_TOKEN is set; then `Authorization: Bearer <token>` is required."""
    token = settings.DAC_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = JsonResponse(error_body("not_authenticated", "send Authorization: Bearer <DAC_METRICS_TOKEN>"),
                                    status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
