"""Idempotent starts (DESIGN §6.6): a key seen in the last 24 h returns the instance it started and
starts nothing. The key's row is inserted first in the start's transaction, so a concurrent start
with the same key waits on it and then finds the instance the first one started."""
from django.db import connection
from django.utils import timezone

from orchestration.engine.errors import Conflict, InvalidRequest
from orchestration.models import IdempotencyRecord

KEY_MAX_LENGTH = 200
WINDOW = timezone.timedelta(hours=24)
_CLAIM_SQL = f"""
INSERT INTO {IdempotencyRecord._meta.db_table} (key, response, created_at) VALUES (%s, '{{}}'::jsonb, now())
ON CONFLICT (key) DO NOTHING RETURNING id
"""


def check_key(key):
    if not isinstance(key, str) or not key.strip():
        raise InvalidRequest("idempotency key must be a non-empty string")
    if len(key) > KEY_MAX_LENGTH or not key.isprintable():
        raise InvalidRequest(f"idempotency key must be at most {KEY_MAX_LENGTH} printable characters")


def start_key_claim(*, key, workflow):
    """In the start's transaction: the id of the instance `key` started within 24 h, or None when
    this start takes the key (recorded by `start_key_record` before the transaction ends)."""
    check_key(key)
    record_key = f"start:{key}"
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [record_key])
        if cursor.fetchone():
            return None
    record = IdempotencyRecord.objects.select_for_update().get(key=record_key)
    started = record.response.get("instance")
    if not started or record.created_at < timezone.now() - WINDOW:
        record.response, record.created_at = {}, timezone.now()  # an old key starts afresh
        record.save(update_fields=["response", "created_at"])
        return None
    if record.response.get("workflow") != workflow:
        raise Conflict(f"idempotency key '{key}' already started workflow '{record.response.get('workflow')}' "
                       f"(instance {started}); use another key to start '{workflow}'")
    return started


def start_key_record(*, key, workflow, instance_id):
    IdempotencyRecord.objects.filter(key=f"start:{key}").update(
        response={"instance": str(instance_id), "workflow": workflow})
