"""Built-in actions against a real local stub server (the only thing standing in for the outside)."""
from decimal import Decimal

import pytest

from orchestration.models import StepAttempt
from tests.support.helpers import apply_spec, finished, start, step

pytestmark = pytest.mark.integration


def test_llm_complete_records_tokens_and_cost_from_the_price_table(live, stub_server):
    apply_spec({"id": "ask", "steps": [
        {"id": "q", "action": "llm.complete", "with": {"prompt": "hello {{ context.who }}", "model": "gpt-4o-mini"}},
    ]})
    instance = finished(start("ask", {"who": "world"}))
    assert instance.status == "completed"
    assert step(instance, "q").output["text"] == "echo: hello world"
    attempt = StepAttempt.objects.get(step_run__instance_id=instance.id)
    assert (attempt.tokens_in, attempt.tokens_out, attempt.model) == (1200, 300, "gpt-4o-mini")
    # 1200 * 0.00015 / 1000 + 300 * 0.0006 / 1000
    assert attempt.cost_usd == Decimal("0.000360")
    sent = [r for r in stub_server.requests if r["path"].endswith("/chat/completions")][-1]
    assert sent["body"]["messages"] == [{"role": "user", "content": "hello world"}]


def test_http_request_reaches_an_allowed_host(live, stub_server):
    apply_spec({"id": "poster", "steps": [
        {"id": "post", "action": "http.request",
         "with": {"method": "POST", "url": f"{stub_server.url}/orders", "json": {"n": "{{ context.n }}"}}},
    ]})
    instance = finished(start("poster", {"n": 3}))
    output = step(instance, "post").output
    assert output["status"] == 200
    assert output["body"] == {"path": "/orders", "received": {"n": 3}}


def test_http_request_refuses_hosts_off_the_allow_list(live):
    apply_spec({"id": "exfil", "steps": [
        {"id": "get", "action": "http.request", "with": {"url": "http://evil.example.com/steal"}},
    ]})
    instance = finished(start("exfil"))
    assert instance.status == "failed"
    assert "evil.example.com" in step(instance, "get").error["message"]
    assert "not allowed" in step(instance, "get").error["message"]


def test_http_error_status_fails_the_attempt(live, stub_server):
    apply_spec({"id": "broken-api", "steps": [
        {"id": "get", "action": "http.request", "with": {"url": f"{stub_server.url}/status/503"}},
    ]})
    instance = finished(start("broken-api"))
    assert "answered 503" in step(instance, "get").error["message"]


def test_python_actions_run_allow_listed_callables(live):
    apply_spec({"id": "py", "steps": [
        {"id": "add", "action": "python:tests.support.pyactions.add", "with": {"a": 2, "b": 3}},
        {"id": "me", "action": "python:tests.support.pyactions.whoami", "depends_on": ["add"]},
    ]})
    instance = finished(start("py"))
    assert step(instance, "add").output == {"sum": 5}
    assert step(instance, "me").output == {"step": "me", "attempt": 1}


def test_shell_run_is_disabled_by_default(live):
    apply_spec({"id": "shelly", "steps": [{"id": "ls", "action": "shell.run", "with": {"argv": ["ls"]}}]})
    instance = finished(start("shelly"))
    assert "disabled" in step(instance, "ls").error["message"]


def test_demo_agents_report_usage_per_attempt(live):
    apply_spec({"id": "agents", "steps": [
        {"id": "plan", "action": "demo.plan", "with": {"feature": "login", "parts": 2}},
        {"id": "code", "action": "demo.code", "foreach": "{{ steps.plan.output.tasks }}",
         "with": {"task": "{{ item }}"}, "depends_on": ["plan"]},
    ]})
    instance = finished(start("agents"))
    assert instance.status == "completed"
    attempts = StepAttempt.objects.filter(step_run__instance_id=instance.id)
    assert attempts.count() == 3
    assert all(a.tokens_in > 0 and a.tokens_out > 0 and a.cost_usd > 0 for a in attempts)
