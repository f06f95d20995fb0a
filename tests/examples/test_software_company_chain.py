"""The seed's DAC runs as a company (issue 6, item 7): one signed webhook to /hooks/support/ticket
starts customer-support; its bug report auto-spawns software-development (high priority), whose
pr_created starts code-review, whose pr_approved starts deployment-pipeline, which waits for a
human before production. One correlation id runs through all of it."""
import json
from pathlib import Path

import pytest
from django.test import Client

from governance.escalations.services import step_decide
from orchestration import engine
from orchestration.events.models import Event
from orchestration.events.webhooks import signature_of
from orchestration.models import WorkflowInstance
from registry import services as registry
from tests.support.helpers import finished, step, step_reaches, wait_until

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "software-company.yaml"
SECRET = "company-webhook-secret"
RUN_TIMEOUT = 90


def one(workflow, correlation_id):
    def found():
        return WorkflowInstance.objects.filter(definition__key=workflow, correlation_id=correlation_id).first()
    return wait_until(found, timeout=RUN_TIMEOUT, message=f"{workflow} to start")


def test_a_signed_support_ticket_runs_the_company_through_to_the_production_approval(live, monkeypatch):
    monkeypatch.setenv("DAC_SECRET_WEBHOOK", SECRET)
    registry.definitions_apply(compiled=registry.compile_path(EXAMPLE), actor="test")
    body = json.dumps({"ticket_id": "T-100", "message": "The app crashes when I log in"}).encode()
    response = Client().post("/hooks/support/ticket", data=body, content_type="application/json",
                             HTTP_X_DAC_SIGNATURE=signature_of(body, SECRET))
    assert response.status_code == 202, response.content
    (support_id,) = response.json()["instances"]
    support = finished(WorkflowInstance.objects.get(id=support_id), timeout=RUN_TIMEOUT)
    assert support.status == "completed" and support.result == {"ticket_id": "T-100", "category": "bug"}
    chain = support.correlation_id
    assert chain == support.trigger["event_id"]  # the webhook's event starts the chain

    development = one("software-development", chain)
    assert development.priority == 7  # auto_spawn: priority high
    assert development.trigger["event_type"] == "bug_report_created"
    assert development.context["feature"] == "fix for ticket T-100: The app crashes when I log in"
    step_reaches(development, "merge", "waiting_approval", timeout=RUN_TIMEOUT)

    review = finished(one("code-review", chain), timeout=RUN_TIMEOUT)
    assert review.status == "completed" and review.result["verdict"] == "approve"
    assert review.result["pr"] == f"PR-{str(development.id)[:8]}"

    deployment = one("deployment-pipeline", chain)
    step_reaches(deployment, "deploy_production", "waiting_approval", timeout=RUN_TIMEOUT)
    assert step(deployment, "deploy_staging").status == "completed"
    step_decide(instance_id=deployment.id, step_id="deploy_production", decision="approve", actor="release-lead")
    deployment = finished(deployment, timeout=RUN_TIMEOUT)
    assert deployment.status == "completed"

    emitted = set(Event.objects.filter(correlation_id=chain).values_list("event_type", flat=True))
    assert {"webhook.support.ticket", "bug_report_created", "pr_created", "pr_approved",
            "deployment_completed"} <= emitted
    assert set(WorkflowInstance.objects.filter(correlation_id=chain).values_list("definition__key", flat=True)) == {
        "customer-support", "software-development", "code-review", "deployment-pipeline"}
    engine.instance_terminate(instance_id=development.id, actor="test")  # leave nothing parked
