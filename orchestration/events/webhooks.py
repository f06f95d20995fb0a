"""Webhook triggers (DESIGN §6.2): `POST /hooks/<path>` with a JSON object body signed by
`X-DAC-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed by `DAC_SECRET_<NAME>`.

Answers: 202 `{"instances": [ids]}`; 404 unknown path; 413 over 1 MiB; 401 a missing or wrong
signature (nothing starts, the refusal is audited); 400 a body that is not a JSON object. An
`Idempotency-Key` seen in the last 24 h returns the first answer and starts nothing new. The
body is published as an event `webhook.<path with dots>` that carries the start's correlation.
"""
import hashlib
import hmac
import json
import logging

from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from dacproject.api import error_body
from dacproject.nul import UNSTORABLE, unstorable_path
from governance.audit import audit_record
from orchestration import engine
from orchestration.engine.scope import secret_value

from .models import EventMatch, IdempotencyRecord, MatchKind, Trigger, TriggerKind
from .publish import Draft, publish

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADER = "X-DAC-Signature"


def _error(status, code, message):
    return JsonResponse(error_body(code, message), status=status)


def signature_of(body, secret):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_type_for(path):
    return "webhook" + path.replace("/", ".")


@csrf_exempt
def receive(request, path):
    if request.method != "POST":
        return _error(405, "method_not_allowed", "webhooks accept POST only")
    path = "/" + path.strip("/")
    trigger = Trigger.objects.select_related("workflow").filter(kind=TriggerKind.WEBHOOK, path=path).first()
    if trigger is None:
        return _error(404, "not_found", f"no webhook trigger is registered at /hooks{path}")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    too_big = declared.isdigit() and int(declared) > MAX_BODY_BYTES
    body = b"" if too_big else request.read(MAX_BODY_BYTES + 1)
    if too_big or len(body) > MAX_BODY_BYTES:
        return _error(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    refusal = _signature_problem(request, body, trigger)
    if refusal:
        _audit_refusal(request, path, refusal)
        return _error(401, "bad_signature", refusal)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, "invalid", f"the body is not JSON: {exc}")
    except RecursionError:
        return _error(400, "invalid", "the body is nested too deeply")
    if not isinstance(payload, dict):
        return _error(400, "invalid", "the body must be a JSON object")
    if unstorable_path(payload, "body"):
        return _error(400, "invalid", f"{unstorable_path(payload, 'body')} {UNSTORABLE}")
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > 200:
        return _error(400, "invalid", "Idempotency-Key is longer than 200 characters")
    correlation_id = request.headers.get("X-Correlation-ID", "")[:200]
    try:
        status, answer = webhook_start(trigger=trigger, payload=payload, idempotency_key=key,
                                       correlation_id=correlation_id)
    except engine.EngineError as exc:
        return _error(exc.http_status, exc.code, exc.message)
    return JsonResponse(answer, status=status)


def _signature_problem(request, body, trigger):
    name = trigger.spec.get("secret") or "WEBHOOK"
    secret = secret_value(name)
    if not secret:
        logger.error("webhook %s: DAC_SECRET_%s is not set, so no request can be verified", trigger.path, name)
        return f"this webhook cannot verify signatures: its secret (DAC_SECRET_{name}) is not configured"
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not given:
        return f"missing {SIGNATURE_HEADER} header (sha256=<hex HMAC-SHA256 of the body>)"
    if not hmac.compare_digest(given.strip().encode(), signature_of(body, secret).encode()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return None


def _audit_refusal(request, path, reason):
    with transaction.atomic():
        audit_record(actor="anonymous", verb="webhook.refused", target_type="webhook", target_id=path,
                     details={"reason": reason, "remote_addr": request.META.get("REMOTE_ADDR", "")})


def webhook_start(*, trigger, payload, idempotency_key="", correlation_id=""):
    """Publish the body as an event and start the workflow, once per idempotency key.

    Returns (HTTP status, answer). The key's row is written first in the transaction, so a
    concurrent request with the same key waits on it and then answers what the first did."""
    record_key = f"webhook:{trigger.path}:{idempotency_key}" if idempotency_key else None
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(key=record_key, response={}) if record_key else None
            answer = _start(trigger, payload, correlation_id)
            if record is not None:
                record.response = answer
                record.save(update_fields=["response"])
            return 202, answer
    except IntegrityError:
        first = IdempotencyRecord.objects.filter(key=record_key).first()
        if first is None:
            raise
        return 202, first.response


def _start(trigger, payload, correlation_id):
    workflow = trigger.workflow.key
    (event,) = publish([Draft(event_type_for(trigger.path), payload, source_workflow="",
                              correlation_id=correlation_id)])
    origin = engine.Origin(
        trigger={"type": "webhook", "path": trigger.path, "event_id": str(event.event_id),
                 "event_type": event.event_type, "correlation_id": event.correlation_id, "payload": payload},
        trigger_key=trigger.key, correlation_id=event.correlation_id)
    instance = engine.instance_start(workflow=workflow, context={**(trigger.spec.get("context") or {}), **payload},
                                     actor=f"webhook:{trigger.path}", origin=origin)
    EventMatch.objects.create(event=event, kind=MatchKind.STARTED, trigger_key=trigger.key, instance=instance)
    return {"instances": [str(instance.id)]}
