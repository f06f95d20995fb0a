"""Property-based fuzzing of every operation in the OpenAPI schema, with data that fits the schema
and data that does not (schemathesis' positive and negative modes): no input a client can send may
produce a 5xx, every 4xx is the JSON error envelope (never Django's HTML page), and a list filter
given a value outside its closed set (an `enum` in the schema) is a 400 naming the field and the
allowed values. Runs in-process against the WSGI app and the real test database.

Plain cases follow for what the fuzzer found once: malformed ids on every detail route, unknown
routes, unknown filter values, and an empty definition."""
import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from dacproject.wsgi import application
from tests.support.helpers import apply_spec, start

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
RAW = schema.raw_schema
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@pytest.fixture
def token(user):
    # As Django's test client does: keep the test's transaction open across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    apply_spec({"id": "fuzzed", "steps": [{"id": "gate", "action": "noop", "approval": True}]})
    start("fuzzed")
    yield Token.objects.create(user=user).key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def error_of(status_code, content_type, content):
    """The `error` object of a 4xx answer, asserting it is the §8 envelope."""
    assert content_type.split(";")[0].strip() == "application/json", (status_code, content_type, content[:200])
    body = json.loads(content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), body
    return error


def error_envelope(ctx, response, case):
    """A schemathesis check: every 4xx is the JSON envelope."""
    if 400 <= response.status_code < 500:
        error_of(response.status_code, (response.headers.get("content-type") or [""])[0], response.content)


def enum_filters(method, path):
    """{name: allowed values} of the operation's query parameters with a closed set."""
    operation = RAW["paths"].get(path, {}).get(method.lower(), {})
    return {p["name"]: p["schema"]["enum"] for p in operation.get("parameters", [])
            if p["in"] == "query" and "enum" in p.get("schema", {})}


def unknown_filter_values_are_a_400(ctx, response, case):
    """A schemathesis check: a value outside a filter's enum, as the server reads it (the last one
    of a repeated parameter), is never served; a 400 names the field and, unless the value is
    text PostgreSQL cannot store, the allowed values."""
    if case.method.upper() != "GET" or not case.path.startswith("/api/v1/"):
        return
    sent = parse_qs(urlsplit(response.request.url).query, keep_blank_values=True)
    for name, allowed in enum_filters(case.method, case.path).items():
        value = (sent.get(name) or [""])[-1]
        if not value or value in allowed:
            continue
        assert response.status_code >= 400, f"{name}={value!r} was served: {response.status_code}"
        if response.status_code != 400:
            continue  # refused before the filters are read (an id no route takes, say)
        error = error_of(400, (response.headers.get("content-type") or [""])[0], response.content)
        assert name in error["details"], error
        if not UNSTORABLE.search(value):
            problem = " ".join(map(str, error["details"][name]))
            assert all(str(v) in problem for v in allowed), error


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_produces_a_server_error_html_or_an_unchecked_filter(case, token):
    response = case.call(headers={"Authorization": f"Token {token}"})
    case.validate_response(response, checks=[not_a_server_error, error_envelope, unknown_filter_values_are_a_400])


# --- plain cases -------------------------------------------------------------------------------

def envelope(response):
    return error_of(response.status_code, response["Content-Type"], response.content)


def call(api, method, url, body=None):
    if method in ("GET", "DELETE"):
        return getattr(api, method.lower())(url)
    return getattr(api, method.lower())(url, data=json.dumps(body if body is not None else {}),
                                        content_type="application/json")


DETAIL_ROUTES = [(method.upper(), path) for path, operations in RAW["paths"].items() if "{id}" in path
                 for method in operations if method in ("get", "post", "put", "patch", "delete")]
MALFORMED_IDS = ["not-a-uuid", "NOT_VALID", "a.b", "zz" * 16, "1234", "x" * 300, "%20", "%00", "%C3%A9", "-", "..."]


def test_the_schema_has_detail_routes_of_each_kind():
    prefixes = {path.split("{id}")[0] for _, path in DETAIL_ROUTES}
    assert {"/api/v1/instances/", "/api/v1/workflows/", "/api/v1/escalations/"} <= prefixes


@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
@pytest.mark.parametrize(("method", "path"), DETAIL_ROUTES)
def test_a_malformed_id_on_every_detail_route_is_a_json_4xx(api, db, method, path, bad_id):
    response = call(api, method, path.replace("{id}", bad_id))
    assert 400 <= response.status_code < 500, (method, path, bad_id, response.status_code)
    envelope(response)


@pytest.mark.parametrize("url", [
    "/api/v1/instances/not-a-uuid/", "/api/v1/instances/not.a.uuid/", "/api/v1/instances/not-a-uuid/lineage/",
    "/api/v1/workflows/Not_A_Workflow/", "/api/v1/workflows/no-such-flow/", "/api/v1/workflows/BAD/metrics/",
    "/api/v1/escalations/not-a-uuid/", "/api/v1/events/not-a-uuid/", "/api/v1/blueprints/not-a-uuid/",
    "/api/v1/nope/", "/api/v1/nope/deeper/", "/api/v2/", "/api/", "/api/v1/dashboard/overview/nope/",
])
def test_an_unknown_resource_or_route_under_the_api_is_the_json_404(api, db, url):
    for method in ("GET", "POST"):
        response = call(api, method, url)
        assert response.status_code in (404, 405), (method, url, response.status_code)
        error = envelope(response)
        assert error["code"] == ("not_found" if response.status_code == 404 else "method_not_allowed")
    assert api.get(url).status_code == 404


def test_the_404_names_what_was_not_found(api, db):
    assert envelope(api.get("/api/v1/instances/not-a-uuid/"))["message"] == "instance 'not-a-uuid' not found"
    assert envelope(api.get("/api/v1/workflows/Not_A_Workflow/"))["message"] == (
        "workflow 'Not_A_Workflow' is not registered")
    unknown = envelope(api.get("/api/v1/nope/"))
    assert "/api/v1/nope/" in unknown["message"] and unknown["details"] == {"path": "/api/v1/nope/"}


def test_outside_the_api_a_404_is_still_an_html_page(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


FILTERS = [(path, name, allowed) for path, operations in RAW["paths"].items() if "get" in operations
           and path.startswith("/api/v1/") for name, allowed in enum_filters("get", path).items()]


def test_every_closed_set_filter_is_declared_in_the_schema():
    declared = {(path, name) for path, name, _ in FILTERS}
    assert {("/api/v1/instances/", "status"), ("/api/v1/escalations/", "status"), ("/api/v1/escalations/", "level"),
            ("/api/v1/workflows/", "type"), ("/api/v1/workflows/", "trigger"),
            ("/api/v1/workflows/{id}/metrics/", "range")} <= declared


@pytest.mark.parametrize(("path", "name", "allowed"), FILTERS)
def test_an_unknown_filter_value_is_a_400_naming_the_field_and_the_allowed_values(api, db, path, name, allowed):
    apply_spec({"id": "listed", "steps": [{"id": "a", "action": "noop"}]})
    response = api.get(path.replace("{id}", "listed"), {name: "bogus"})
    assert response.status_code == 400, response.content
    error = envelope(response)
    assert error["code"] == "invalid"
    problem = " ".join(map(str, error["details"][name]))
    assert "bogus" in problem and all(str(value) in problem for value in allowed), problem


@pytest.mark.parametrize(("url", "field"), [
    ("/api/v1/instances/?parent=not-a-uuid", "parent"),
    ("/api/v1/escalations/?instance=not-a-uuid", "instance"),
    ("/api/v1/events/?source_instance=not-a-uuid", "source_instance"),
    ("/api/v1/events/?since=yesterday", "since"),
])
def test_a_malformed_id_or_time_in_a_filter_is_a_400_not_a_500(api, db, url, field):
    response = api.get(url)
    assert response.status_code == 400, response.content
    details = envelope(response)["details"]
    assert field in details or details.get("field") == field, details


def test_the_filters_still_filter(api, db):
    apply_spec({"id": "listed", "type": "support", "triggers": [{"type": "manual"}],
                "steps": [{"id": "gate", "action": "noop", "approval": True}]})
    instance = start("listed")
    assert [i["id"] for i in api.get("/api/v1/instances/", {"status": "waiting"}).json()["results"]] == [
        str(instance.id)]
    assert api.get("/api/v1/instances/", {"status": "running"}).json()["count"] == 0
    assert api.get("/api/v1/instances/", {"parent": str(uuid.uuid4())}).json()["count"] == 0
    assert api.get("/api/v1/workflows/", {"trigger": "manual", "type": "support"}).json()["count"] == 1
    assert api.get("/api/v1/workflows/", {"trigger": "webhook"}).json()["count"] == 0
    assert api.get("/api/v1/workflows/", {"type": "data"}).json()["count"] == 0


def test_an_empty_definition_says_plainly_that_it_needs_an_id(api, db):
    response = call(api, "POST", "/api/v1/workflows/", {})
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "invalid_definition"
    assert "a workflow definition needs an id" in error["message"]
    (problem,) = error["details"]["errors"]
    assert problem["field"] == "id"
    assert problem["message"].startswith("a workflow definition needs an id")
    assert "seed-004" not in problem["message"].split("(")[0]  # the dialect is a side note, not the message
