"""Writing, sealing and verifying the hash-chained audit log (DESIGN §7.3).

Every workflow and governance action writes one `AuditEntry` inside the transaction of its
change, so an action and its audit row commit or roll back together. Writing it must not
serialise the engine: a chain built at insert time needs a single head, i.e. a global lock
held from "read the last hash" until commit by every audited transaction, which capped the
engine at a few hundred starts/approvals per second. So writing and chaining are split:

- `audit_record()` only INSERTs the row's content (actor, verb, target, details, time). No
  lock, no read: audited transactions never wait for each other. `seq`, `prev_hash` and
  `hash` stay NULL: the row is *unsealed*.
- `audit_seal()` (the `governance.tasks.audit_seal` beat task every
  DAC_AUDIT_SEAL_INTERVAL_SECONDS, `dac audit verify`, the console's "Verify chain") chains
  the committed unsealed rows in id order onto the head: the next `seq`, `prev_hash` = the
  previous row's hash, `hash` over the content, `created_at`, `seq` and `prev_hash`. One
  sealer runs at a time (a *try* advisory lock that the engine never takes; a second sealer
  just returns 0). The chain order is seal order: a row whose transaction commits after a
  row with a higher id simply gets a later `seq`, so nothing is ever skipped or sealed twice.
- `audit_verify()` walks the sealed rows in `seq` order and reports edits (content does not
  match its hash), deletions and reorders (previous-hash mismatch, gaps in `seq`). Unsealed
  rows are not problems; the report says how many are waiting.

What this guarantees: the chain is verified up to the last sealed row. An unsealed row is
not yet covered, so the window in which a row could be edited or deleted undetected is the
seal interval (plus any backlog), instead of zero; rows are immutable to the application
either way (the console is read-only, no service updates them). As before, an unkeyed chain
cannot tell a truncated tail from a shorter log.

Rows written before sealing existed were chained in id order at insert time with a digest
without `seq`. Migration 0003 gives them `seq` in id order and `digest_version` 1 and keeps
their hashes: they are verified with the legacy digest, exactly as before. Re-hashing them in
the migration would have re-signed whatever the table held at upgrade time, laundering any
earlier edit; keeping the old hashes means the upgrade vouches for nothing. New rows are
sealed with `digest_version` 2 (the digest covers `seq`).
"""
import hashlib
import json

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEntry

GENESIS = "0" * 64
# Held (try-only) by the one sealer at a time; audited transactions never take it.
_SEAL_LOCK = 0x0DAC_A0D2
DIGEST_LEGACY = 1  # rows chained at insert time, before sealing: the digest does not cover seq
DIGEST_SEQ = 2  # rows chained by the sealer: the digest covers seq
SEAL_BATCH = 1000  # rows per UPDATE statement
_CONTENT = ("id", "actor_name", "verb", "target_type", "target_id", "details", "created_at")


class ChainReport(list):
    """`audit_verify()`'s answer: the list of problems ([] if intact), plus `verified` (sealed
    entries checked) and `awaiting_seal` (entries not chained yet, which are not problems)."""

    def __init__(self, problems=(), *, verified=0, awaiting_seal=0):
        super().__init__(problems)
        self.verified = verified
        self.awaiting_seal = awaiting_seal


def actor_parts(actor):
    """(user or None, display name) for a User, a username string or None (the system)."""
    user_model = get_user_model()
    if isinstance(actor, user_model):
        return actor, actor.get_username()
    if isinstance(actor, str) and actor:
        return None, actor
    return None, "system"


def _digest(prev_hash, actor_name, verb, target_type, target_id, details, created_at, seq=None):
    """sha256 of a canonical JSON list; the legacy digest (seq None) is the same list without seq."""
    fields = [prev_hash, actor_name, verb, target_type, str(target_id), details, created_at.isoformat()]
    if seq is not None:
        fields.append(seq)
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def audit_record(*, actor, verb, target_type, target_id, details=None):
    """Append one (unsealed) entry; call inside the transaction of the change it records.
    A plain INSERT: no lock and no read, so audited transactions never wait for each other."""
    assert transaction.get_connection().in_atomic_block, "audit rows are written with their change"
    user, name = actor_parts(actor)
    details = json.loads(json.dumps(details or {}, default=str))
    return AuditEntry.objects.create(
        actor=user, actor_name=name, verb=verb, target_type=target_type, target_id=str(target_id),
        details=details, created_at=timezone.now(),
    )


def audit_seal(limit=None):
    """Chain the committed unsealed entries (oldest id first, at most `limit`; None: all there
    are) onto the head. Returns how many were sealed; 0 when another sealer is at work.

    Within a caller's transaction the seals (and the lock) last until that transaction ends."""
    sealed = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_SEAL_LOCK])
        if not cursor.fetchone()[0]:
            return 0
        # Read after taking the lock: the previous sealer's work is committed and visible.
        head = (AuditEntry.objects.filter(seq__isnull=False).order_by("-seq")
                .values_list("seq", "hash").first()) or (0, GENESIS)
        seq, prev = head
        while limit is None or sealed < limit:
            size = SEAL_BATCH if limit is None else min(SEAL_BATCH, limit - sealed)
            rows = list(AuditEntry.objects.filter(seq__isnull=True).order_by("id").values_list(*_CONTENT)[:size])
            if not rows:
                break
            values = []
            for entry_id, actor_name, verb, target_type, target_id, details, created_at in rows:
                seq += 1
                digest = _digest(prev, actor_name, verb, target_type, target_id, details, created_at, seq)
                values.append((entry_id, seq, prev, digest))
                prev = digest
            _seal_rows(cursor, values)
            sealed += len(rows)
            if len(rows) < size:
                break
    return sealed


def _seal_rows(cursor, values):
    """One UPDATE for a batch of (id, seq, prev_hash, hash)."""
    table = AuditEntry._meta.db_table
    rows_sql = ", ".join(["(%s::bigint, %s::bigint, %s, %s)"] * len(values))
    cursor.execute(
        f"UPDATE {table} AS a SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash, digest_version = %s "
        f"FROM (VALUES {rows_sql}) AS v(id, seq, prev_hash, hash) WHERE a.id = v.id AND a.seq IS NULL",
        [DIGEST_SEQ, *(field for row in values for field in row)],
    )
    if cursor.rowcount != len(values):  # only sealers update audit rows, and they take turns
        raise RuntimeError(f"audit seal: {len(values)} rows to seal, {cursor.rowcount} updated")


def audit_verify():
    """A `ChainReport`: [] if the sealed chain is intact, else a description of each break (edit,
    deletion, reorder), with the number of entries verified and of entries awaiting seal."""
    problems = []
    prev, expected_seq, verified, seen_sealer = GENESIS, 1, 0, False
    entries = AuditEntry.objects.filter(seq__isnull=False).order_by("seq").only(
        "seq", "digest_version", "prev_hash", "hash", *_CONTENT)
    for entry in entries.iterator(chunk_size=2000):
        verified += 1
        if entry.seq != expected_seq:
            problems.append(f"entry {entry.id}: entry missing before seq {entry.seq} (expected seq {expected_seq})")
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.id}: previous-hash mismatch (an entry before it was removed or changed)")
        if entry.digest_version == DIGEST_SEQ:
            seen_sealer, seq = True, entry.seq
        elif entry.digest_version == DIGEST_LEGACY and not seen_sealer:
            seq = None
        else:
            problems.append(f"entry {entry.id}: unexpected digest version {entry.digest_version} (edited)")
            seq = entry.seq
        expected = _digest(entry.prev_hash, entry.actor_name, entry.verb, entry.target_type, entry.target_id,
                           entry.details, entry.created_at, seq)
        if expected != entry.hash:
            problems.append(f"entry {entry.id}: content does not match its hash (edited)")
        prev, expected_seq = entry.hash, entry.seq + 1
    awaiting = AuditEntry.objects.filter(seq__isnull=True).count()
    return ChainReport(problems, verified=verified, awaiting_seal=awaiting)
