"""Writing and verifying the hash-chained audit log."""
import hashlib
import json

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEntry

GENESIS = "0" * 64
# One PostgreSQL advisory lock serialises appends so the chain has a single head.
_CHAIN_LOCK = 0x0DAC_A0D1


def actor_parts(actor):
    """(user or None, display name) for a User, a username string or None (the system)."""
    user_model = get_user_model()
    if isinstance(actor, user_model):
        return actor, actor.get_username()
    if isinstance(actor, str) and actor:
        return None, actor
    return None, "system"


def _digest(prev_hash, actor_name, verb, target_type, target_id, details, created_at):
    payload = json.dumps(
        [prev_hash, actor_name, verb, target_type, str(target_id), details, created_at.isoformat()],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def audit_record(*, actor, verb, target_type, target_id, details=None):
    """Append one entry; call inside the transaction of the change it records."""
    assert transaction.get_connection().in_atomic_block, "audit rows are written with their change"
    user, name = actor_parts(actor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK])
    prev = AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
    details = json.loads(json.dumps(details or {}, default=str))
    now = timezone.now()
    return AuditEntry.objects.create(
        actor=user, actor_name=name, verb=verb, target_type=target_type, target_id=str(target_id),
        details=details, created_at=now, prev_hash=prev,
        hash=_digest(prev, name, verb, target_type, target_id, details, now),
    )


def audit_verify():
    """[] if the chain is intact, else a description of each break (edit, deletion, reorder)."""
    problems = []
    prev = GENESIS
    for entry in AuditEntry.objects.order_by("id").iterator():
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.id}: previous-hash mismatch (an entry before it was removed or changed)")
        expected = _digest(entry.prev_hash, entry.actor_name, entry.verb, entry.target_type, entry.target_id,
                           entry.details, entry.created_at)
        if expected != entry.hash:
            problems.append(f"entry {entry.id}: content does not match its hash (edited)")
        prev = entry.hash
    return problems
