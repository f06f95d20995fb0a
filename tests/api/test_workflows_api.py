"""`/api/v1/workflows/` and `/api/v1/blueprints/` (DESIGN §8)."""
import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from governance.models import AuditEntry
from registry.models import WorkflowDefinition, WorkflowVersion

SPEC = {"id": "api-flow", "type": "data", "tags": ["core"], "inputs": ["ticket"], "outputs": ["answer"],
        "triggers": [{"type": "manual"}, {"type": "event", "event": "ticket.created"}],
        "steps": [{"id": "a", "action": "echo", "with": {"x": "{{ context.x }}"}}]}
YAML = """
id: yaml-flow
type: support
steps:
  - {id: a, action: noop}
"""
SEED_BLUEPRINT = Path("/work/shared/seeds/blueprint-software-company.yaml")


def post_json(api, url, body):
    return api.post(url, data=json.dumps(body), content_type="application/json")


def test_anonymous_requests_get_a_401_error_envelope(db):
    response = APIClient().get("/api/v1/workflows/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_session_authentication_works_too(user):
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/v1/workflows/").status_code == 200


def test_create_from_json_then_identical_is_200_and_changed_is_version_2(api):
    first = post_json(api, "/api/v1/workflows/", SPEC)
    assert first.status_code == 201
    assert first.json()["version"] == 1 and first.json()["id"] == "api-flow"
    again = post_json(api, "/api/v1/workflows/", SPEC)
    assert again.status_code == 200 and again.json()["version"] == 1
    changed = post_json(api, "/api/v1/workflows/", {**SPEC, "description": "v2"})
    assert changed.status_code == 201 and changed.json()["version"] == 2
    assert AuditEntry.objects.filter(verb="definitions.apply", actor_name="operator").count() == 2


def test_create_from_yaml(api):
    response = api.post("/api/v1/workflows/", data=YAML, content_type="application/yaml")
    assert response.status_code == 201
    assert response.json()["spec"]["steps"][0]["action"] == "noop"


def test_an_invalid_definition_is_a_400_naming_step_and_field_and_registers_nothing(api):
    bad = {**SPEC, "steps": [{"id": "a", "action": "nope"}, {"id": "b", "action": "noop", "depends_on": ["zz"]}]}
    response = post_json(api, "/api/v1/workflows/", bad)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_definition"
    assert {(e["step"], e["field"]) for e in error["details"]["errors"]} == {("a", "action"), ("b", "depends_on")}
    assert not WorkflowDefinition.objects.exists() and not WorkflowVersion.objects.exists()


@pytest.mark.parametrize("body, content_type, fragment", [
    ("", "application/json", "empty"),
    ("{not json", "application/json", "invalid JSON"),
    ("a: [b", "application/yaml", "invalid YAML"),
    ("[1, 2]", "application/json", "must be a mapping"),
    (b"\xff\xfe", "application/json", "UTF-8"),
])
def test_garbage_bodies_are_400s(api, body, content_type, fragment):
    response = api.post("/api/v1/workflows/", data=body, content_type=content_type)
    assert response.status_code == 400
    assert fragment in json.dumps(response.json())


def test_a_blueprint_posted_as_a_workflow_is_refused(api):
    response = api.post("/api/v1/workflows/", data=SEED_BLUEPRINT.read_text(), content_type="application/yaml")
    assert response.status_code == 400
    assert "/api/v1/blueprints/" in response.json()["error"]["message"]


def test_blueprints_apply_the_seed_verbatim(api):
    response = api.post("/api/v1/blueprints/", data=SEED_BLUEPRINT.read_text(), content_type="application/yaml")
    assert response.status_code == 200
    assert len(response.json()["workflows"]) == 7
    assert WorkflowDefinition.objects.filter(status="registered").count() == 7


@pytest.mark.parametrize("query, expected", [
    ("type=data", ["api-flow"]), ("tag=core", ["api-flow"]), ("input=ticket", ["api-flow"]),
    ("output=answer", ["api-flow"]), ("trigger=event", ["api-flow"]), ("type=support", ["yaml-flow"]),
    ("tag=none", []),
])
def test_list_filters(api, query, expected):
    post_json(api, "/api/v1/workflows/", SPEC)
    api.post("/api/v1/workflows/", data=YAML, content_type="application/yaml")
    response = api.get(f"/api/v1/workflows/?{query}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [w["id"] for w in body["results"]] == expected


def test_detail_and_404_envelope(api):
    post_json(api, "/api/v1/workflows/", SPEC)
    assert api.get("/api/v1/workflows/api-flow/").json()["spec"]["id"] == "api-flow"
    missing = api.get("/api/v1/workflows/nope/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_run_starts_an_instance_and_returns_201(api):
    post_json(api, "/api/v1/workflows/", SPEC)
    response = post_json(api, "/api/v1/workflows/api-flow/run/", {"context": {"x": 1}})
    assert response.status_code == 201
    body = response.json()
    assert body["workflow"] == "api-flow" and body["version"] == 1 and body["status"] == "running"
    assert [s["step_id"] for s in body["steps"]] == ["a"]


@pytest.mark.parametrize("body, status", [
    ({"context": [1]}, 400), ({"context": "x"}, 400), ({"priority": 11}, 400), ({}, 201),
])
def test_run_validates_its_body(api, body, status):
    post_json(api, "/api/v1/workflows/", SPEC)
    assert post_json(api, "/api/v1/workflows/api-flow/run/", body).status_code == status


def test_run_of_unknown_or_stepless_workflows(api):
    assert post_json(api, "/api/v1/workflows/ghost/run/", {}).status_code == 404
    api.post("/api/v1/blueprints/", data=SEED_BLUEPRINT.read_text(), content_type="application/yaml")
    response = post_json(api, "/api/v1/workflows/code-review/run/", {})
    assert response.status_code == 400
    assert "has no steps" in response.json()["error"]["message"]


def test_schema_and_docs_are_served(db):
    client = APIClient()
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_nul_characters_are_400s_not_database_errors(api):
    assert api.get("/api/v1/workflows/?type=a%00b").status_code == 400
    bad_spec = {**SPEC, "description": "nul \u0000 inside"}
    response = post_json(api, "/api/v1/workflows/", bad_spec)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["errors"][0]["field"] == "$.description"
    post_json(api, "/api/v1/workflows/", SPEC)
    response = post_json(api, "/api/v1/workflows/api-flow/run/", {"context": {"k": "a\u0000"}})
    assert response.status_code == 400 and "context.k" in response.json()["error"]["message"]


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
def test_a_number_jsonb_cannot_store_is_a_400_and_starts_nothing(api, number):
    from orchestration.models import WorkflowInstance
    from tests.support.helpers import apply_spec

    apply_spec({"id": "finite-only", "steps": [{"id": "a", "action": "noop"}]})
    response = api.post("/api/v1/workflows/finite-only/run/", data=f'{{"context": {{"x": {number}}}}}',
                        content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"]
    assert not WorkflowInstance.objects.exists()
