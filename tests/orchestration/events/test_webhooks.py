"""`POST /hooks/<path>` (DESIGN §6.2): signatures, the 401/404/400/413 answers, idempotency."""
import json

import pytest
from django.test import Client

from governance.models import AuditEntry
from orchestration.events.models import Event
from orchestration.events.webhooks import signature_of
from orchestration.models import WorkflowInstance
from tests.support.helpers import apply_yaml

SECRET = "hook-secret-for-tests"


@pytest.fixture
def hook(db, monkeypatch):
    monkeypatch.setenv("DAC_SECRET_WEBHOOK", SECRET)
    monkeypatch.setenv("DAC_SECRET_PARTNER", "partner-secret")
    apply_yaml("""
id: ticket-intake
triggers:
  - {type: webhook, path: /support/ticket, context: {channel: web}}
  - {type: webhook, path: /partner/ticket, secret: PARTNER}
steps:
  - {id: triage, action: echo, with: {ticket: "{{ context.ticket_id }}"}}
""")


def send(body, *, path="/hooks/support/ticket", secret=SECRET, raw=None, **headers):
    data = raw if raw is not None else json.dumps(body).encode()
    if secret:
        headers.setdefault("HTTP_X_DAC_SIGNATURE", signature_of(data, secret))
    return Client().post(path, data=data, content_type="application/json", **headers)


def test_a_signed_json_object_starts_the_workflow_and_answers_202(hook):
    response = send({"ticket_id": "T-1", "message": "crash"}, HTTP_X_CORRELATION_ID="chain-1")
    assert response.status_code == 202
    (instance_id,) = response.json()["instances"]
    instance = WorkflowInstance.objects.get(id=instance_id)
    assert instance.context == {"channel": "web", "ticket_id": "T-1", "message": "crash"}
    assert instance.correlation_id == "chain-1"
    assert instance.trigger["type"] == "webhook" and instance.trigger["path"] == "/support/ticket"
    event = Event.objects.get(event_id=instance.trigger["event_id"])
    assert (event.event_type, event.payload) == ("webhook.support.ticket", {"ticket_id": "T-1", "message": "crash"})
    assert AuditEntry.objects.filter(verb="instance.start", actor_name="webhook:/support/ticket").exists()


def test_a_trigger_can_name_its_own_secret(hook):
    assert send({"ticket_id": "P"}, path="/hooks/partner/ticket").status_code == 401
    assert send({"ticket_id": "P"}, path="/hooks/partner/ticket", secret="partner-secret").status_code == 202


@pytest.mark.parametrize("headers", [{"secret": None}, {"secret": "wrong"},
                                     {"HTTP_X_DAC_SIGNATURE": "sha256=00"}, {"HTTP_X_DAC_SIGNATURE": "md5=abc"}])
def test_a_missing_or_wrong_signature_is_401_starts_nothing_and_is_audited(hook, headers):
    response = send({"ticket_id": "T-2"}, **headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert not WorkflowInstance.objects.exists() and not Event.objects.exists()
    refusal = AuditEntry.objects.get(verb="webhook.refused")
    assert refusal.target_id == "/support/ticket" and refusal.details["reason"]


def test_without_a_configured_secret_nothing_can_be_verified(hook, monkeypatch):
    monkeypatch.delenv("DAC_SECRET_WEBHOOK")
    response = send({"ticket_id": "T-3"})
    assert response.status_code == 401 and "DAC_SECRET_WEBHOOK" in response.json()["error"]["message"]


def test_unknown_path_bad_body_too_large_and_wrong_method(hook):
    assert send({"a": 1}, path="/hooks/nowhere").status_code == 404
    assert send(None, raw=b"[1, 2]").status_code == 400
    assert send(None, raw=b"{not json").status_code == 400
    assert send(None, raw=b"\xff\xfe").status_code == 400
    big = json.dumps({"blob": "x" * (1024 * 1024)}).encode()
    too_large = send(None, raw=big)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "too_large"
    assert Client().get("/hooks/support/ticket").status_code == 405
    assert not WorkflowInstance.objects.exists()


def test_an_idempotency_key_seen_before_returns_the_first_answer_and_starts_nothing(hook):
    first = send({"ticket_id": "T-4"}, HTTP_IDEMPOTENCY_KEY="req-1")
    again = send({"ticket_id": "T-4"}, HTTP_IDEMPOTENCY_KEY="req-1")
    other = send({"ticket_id": "T-4"}, HTTP_IDEMPOTENCY_KEY="req-2")
    assert first.status_code == again.status_code == other.status_code == 202
    assert first.json() == again.json() != other.json()
    assert WorkflowInstance.objects.count() == 2


def test_bodies_json_can_parse_but_postgresql_cannot_store_are_400s(hook):
    deep = b"[" * 100000 + b"]" * 100000
    assert send(None, raw=b'{"a": ' + deep + b"}").status_code == 400
    lone_surrogate = send(None, raw=b'{"ticket_id": "\\ud800"}')
    assert lone_surrogate.status_code == 400 and "surrogate" in lone_surrogate.json()["error"]["message"]
    assert not WorkflowInstance.objects.exists()
