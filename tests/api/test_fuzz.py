"""Property-based fuzzing of every operation in the OpenAPI schema: no input a client can send
may produce a 5xx. Runs in-process against the WSGI app and the real test database."""
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


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_produces_a_server_error(case, token):
    response = case.call(headers={"Authorization": f"Token {token}"})
    case.validate_response(response, checks=[not_a_server_error])
