"""The audit log: audited transactions only insert, the sealer chains, verify finds edits and deletions.

The concurrency tests use `transactional_db` and threads, so each writer and sealer has its own
PostgreSQL connection and real, separately committed transactions.
"""
import datetime
import hashlib
import json
import threading
import time

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from governance.audit import GENESIS, audit_record, audit_seal, audit_verify
from governance.models import AuditEntry


def record(n=1, *, verb="test.action", actor="alice", **details):
    with transaction.atomic():
        for i in range(n):
            audit_record(actor=actor, verb=verb, target_type="thing", target_id=i, details={"i": i, **details})


def seal_everything():
    while audit_seal():
        pass


def in_thread(target, *args):
    """Run `target` on its own thread (so on its own database connection); the thread closes it."""
    outcome = {}

    def run():
        try:
            outcome["value"] = target(*args)
        except BaseException as exc:  # noqa: B036 - handed back to the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.outcome = outcome
    return thread


def result(thread, timeout=30):
    thread.join(timeout)
    assert not thread.is_alive(), "thread did not finish"
    if "error" in thread.outcome:
        raise thread.outcome["error"]
    return thread.outcome.get("value")


def test_audit_record_only_inserts_an_unsealed_row(db):
    with transaction.atomic():
        entry = audit_record(actor="alice", verb="instance.start", target_type="instance", target_id=7,
                             details={"when": timezone.now()})
    entry.refresh_from_db()
    assert (entry.seq, entry.prev_hash, entry.hash, entry.digest_version) == (None, None, None, None)
    assert not entry.sealed
    assert entry.actor_name == "alice" and entry.target_id == "7" and isinstance(entry.details["when"], str)
    report = audit_verify()
    assert report == [] and (report.verified, report.awaiting_seal) == (0, 1)


def test_audit_record_without_the_change_s_transaction_is_refused(transactional_db):
    with pytest.raises(AssertionError, match="written with their change"):
        audit_record(actor="alice", verb="x", target_type="thing", target_id=1)


def test_a_chain_of_many_rows_is_sealed_in_id_order_and_verifies(db):
    record(2500)  # more than one UPDATE batch
    assert audit_seal(limit=10) == 10
    assert audit_seal() == 2490
    assert audit_seal() == 0
    entries = list(AuditEntry.objects.order_by("seq"))
    assert [e.seq for e in entries] == list(range(1, 2501))
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert entries[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(entries, entries[1:], strict=False))
    assert {e.digest_version for e in entries} == {2}
    report = audit_verify()
    assert report == [] and (report.verified, report.awaiting_seal) == (2500, 0)


def test_rows_written_after_a_seal_chain_onto_the_head(db):
    record(3)
    audit_seal()
    head = AuditEntry.objects.get(seq=3)
    record(2, verb="later")
    assert audit_seal() == 2
    assert AuditEntry.objects.get(seq=4).prev_hash == head.hash
    assert audit_verify() == []


def test_unsealed_rows_are_not_problems(db):
    record(5)
    audit_seal()
    record(3, verb="unsealed")
    report = audit_verify()
    assert report == [] and (report.verified, report.awaiting_seal) == (5, 3)


@pytest.mark.parametrize("change", [
    {"actor_name": "mallory"},
    {"verb": "nothing"},
    {"target_id": "999"},
    {"details": {"i": 2, "forged": True}},
    {"created_at": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)},
])
def test_an_edit_of_a_sealed_row_is_detected(db, change):
    record(5)
    audit_seal()
    tampered = AuditEntry.objects.get(seq=3)
    AuditEntry.objects.filter(pk=tampered.pk).update(**change)
    assert audit_verify() == [f"entry {tampered.id}: content does not match its hash (edited)"]


def test_an_edit_that_rehashes_the_row_breaks_the_link_to_the_next(db):
    record(5)
    audit_seal()
    tampered = AuditEntry.objects.get(seq=3)
    AuditEntry.objects.filter(pk=tampered.pk).update(hash="f" * 64)
    following = AuditEntry.objects.get(seq=4)
    assert audit_verify() == [
        f"entry {tampered.id}: content does not match its hash (edited)",
        f"entry {following.id}: previous-hash mismatch (an entry before it was removed or changed)",
    ]


def test_a_deletion_in_the_middle_is_detected(db):
    record(5)
    audit_seal()
    AuditEntry.objects.filter(seq=3).delete()
    following = AuditEntry.objects.get(seq=4)
    problems = audit_verify()
    assert problems == [
        f"entry {following.id}: entry missing before seq 4 (expected seq 3)",
        f"entry {following.id}: previous-hash mismatch (an entry before it was removed or changed)",
    ]


def test_a_deletion_of_the_first_row_is_detected(db):
    record(3)
    audit_seal()
    AuditEntry.objects.filter(seq=1).delete()
    assert any("entry missing before seq 2" in p for p in audit_verify())


def test_a_reorder_is_detected(db):
    record(4)
    audit_seal()
    two, three = AuditEntry.objects.get(seq=2), AuditEntry.objects.get(seq=3)
    AuditEntry.objects.filter(pk=two.pk).update(seq=-2)
    AuditEntry.objects.filter(pk=three.pk).update(seq=2)
    AuditEntry.objects.filter(pk=two.pk).update(seq=3)
    problems = audit_verify()
    assert f"entry {three.id}: previous-hash mismatch (an entry before it was removed or changed)" in problems
    assert f"entry {three.id}: content does not match its hash (edited)" in problems  # the hash covers seq


def test_unsealing_a_row_to_have_it_sealed_again_later_leaves_a_gap(db):
    record(4)
    audit_seal()
    tampered = AuditEntry.objects.get(seq=2)
    AuditEntry.objects.filter(pk=tampered.pk).update(seq=None, prev_hash=None, hash=None, digest_version=None,
                                                     actor_name="mallory")
    audit_seal()
    assert AuditEntry.objects.get(pk=tampered.pk).seq == 5
    assert any("entry missing before seq 3" in p for p in audit_verify())


def test_a_sealed_row_cannot_lose_only_part_of_its_seal(db):
    from django.db import IntegrityError

    record(1)
    audit_seal()
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.update(hash=None)


# --- concurrency: the engine is not serialised, and every row is sealed exactly once -----------


def test_an_open_audited_transaction_does_not_block_another(transactional_db):
    """Transaction A writes its audit row and stays open; B writes and commits meanwhile. With a
    chain built at insert time (one global lock until commit) B would wait for A."""
    inserted, release = threading.Event(), threading.Event()

    def writer_a():
        with transaction.atomic():
            entry = audit_record(actor="a", verb="slow.change", target_type="thing", target_id="a")
            inserted.set()
            assert release.wait(20)
        return entry.id

    def writer_b():
        with transaction.atomic():
            with connection.cursor() as cursor:  # never hang the suite if it does block
                cursor.execute("SET LOCAL lock_timeout = '10s'")
            entry = audit_record(actor="b", verb="quick.change", target_type="thing", target_id="b")
        return entry.id

    a = in_thread(writer_a)
    try:
        assert inserted.wait(10)
        started = time.monotonic()
        b = in_thread(writer_b)
        b.join(2.0)
        assert not b.is_alive(), "the second audited transaction waited for the first"
        b_id = result(b)
        assert time.monotonic() - started < 2.0

        # B committed with a higher id while A (lower id) is still open: B is sealed now, A later.
        assert audit_seal() == 1
        assert AuditEntry.objects.get(id=b_id).seq == 1
    finally:
        release.set()
    a_id = result(a)
    assert a_id < b_id
    assert audit_seal() == 1
    assert AuditEntry.objects.get(id=a_id).seq == 2
    report = audit_verify()
    assert report == [] and (report.verified, report.awaiting_seal) == (2, 0)


def test_a_sealer_at_work_makes_another_return_at_once(transactional_db):
    record(3)
    sealing, release = threading.Event(), threading.Event()

    def first_sealer():
        with transaction.atomic():
            sealed = audit_seal()
            sealing.set()
            assert release.wait(20)
        return sealed

    first = in_thread(first_sealer)
    try:
        assert sealing.wait(10)
        record(2)
        started = time.monotonic()
        assert audit_seal() == 0  # the lock is taken: no waiting, nothing sealed twice
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
    assert result(first) == 3
    assert audit_seal() == 2
    assert list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert audit_verify() == []


def test_concurrent_writers_and_racing_sealers_seal_each_row_exactly_once(transactional_db):
    """Four writers commit rows (in random interleavings, so commit order differs from id order)
    while three sealers race; at the end every row has one seq, 1..N without gaps, and verifies."""
    writers_done = threading.Event()
    per_writer, tx_rows = 150, 3

    def writer(name):
        for i in range(per_writer):
            with transaction.atomic():
                for j in range(tx_rows):
                    audit_record(actor=name, verb="race.write", target_type="thing", target_id=f"{i}/{j}")
                if i % 7 == 0:
                    time.sleep(0.002)  # hold some transactions open while others commit

    def sealer():
        counts = []
        while not writers_done.is_set() or AuditEntry.objects.filter(seq__isnull=True).exists():
            counts.append(audit_seal(limit=50))
            if not counts[-1]:
                time.sleep(0.001)
        return counts

    sealers = [in_thread(sealer) for _ in range(3)]
    writers = [in_thread(writer, f"w{n}") for n in range(4)]
    for thread in writers:
        result(thread, timeout=120)
    writers_done.set()
    sealed = [n for thread in sealers for n in result(thread, timeout=120)]

    total = 4 * per_writer * tx_rows
    assert sum(sealed) == total
    assert AuditEntry.objects.count() == total
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()
    assert sorted(AuditEntry.objects.values_list("seq", flat=True)) == list(range(1, total + 1))
    report = audit_verify()
    assert report == [] and report.verified == total


# --- rows chained before sealing existed (migration 0003) ---------------------------------------


def legacy_digest(prev_hash, actor_name, verb, target_type, target_id, details, created_at):
    """The digest audit_record computed at insert time before sealing existed (a copy, on purpose)."""
    payload = json.dumps(
        [prev_hash, actor_name, verb, target_type, str(target_id), details, created_at.isoformat()],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def test_migration_keeps_rows_chained_before_sealing_verifiable(transactional_db):
    executor = MigrationExecutor(connection)
    executor.migrate([("governance", "0002_escalations")])
    try:
        executor.loader.build_graph()
        old_entry = executor.loader.project_state([("governance", "0002_escalations")]).apps.get_model(
            "governance", "AuditEntry")
        prev = GENESIS
        for i in range(5):  # as the old audit_record wrote them: chained in id order at insert time
            now, details = timezone.now(), {"i": i, "nested": {"b": 1, "a": [1.5, None]}}
            digest = legacy_digest(prev, "old", "legacy.action", "thing", i, details, now)
            old_entry.objects.create(actor_name="old", verb="legacy.action", target_type="thing", target_id=str(i),
                                     details=details, created_at=now, prev_hash=prev, hash=digest)
            prev = digest
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    legacy = list(AuditEntry.objects.order_by("id"))
    assert [(e.seq, e.digest_version) for e in legacy] == [(n, 1) for n in range(1, 6)]
    record(3, verb="new.action")
    assert audit_seal() == 3
    first_new = AuditEntry.objects.get(seq=6)
    assert first_new.prev_hash == legacy[-1].hash and first_new.digest_version == 2
    report = audit_verify()
    assert report == [] and report.verified == 8

    AuditEntry.objects.filter(pk=legacy[1].pk).update(details={"i": 99})
    assert audit_verify() == [f"entry {legacy[1].id}: content does not match its hash (edited)"]
    AuditEntry.objects.filter(pk=legacy[1].pk).update(details=legacy[1].details)
    # a sealed row passed off as legacy (so that its hash need not cover seq) is reported
    AuditEntry.objects.filter(pk=first_new.pk).update(digest_version=1)
    assert audit_verify() == [f"entry {first_new.id}: content does not match its hash (edited)"]
    AuditEntry.objects.filter(pk=first_new.pk).update(digest_version=2)
    last = AuditEntry.objects.get(seq=8)
    AuditEntry.objects.filter(pk=last.pk).update(digest_version=1)
    assert f"entry {last.id}: unexpected digest version 1 (edited)" in audit_verify()
