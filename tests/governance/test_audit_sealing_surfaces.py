"""Where sealing runs and shows: the beat task, `dac audit verify`, the console's log and "Verify chain"."""
import logging
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse

from governance import tasks
from governance.audit import audit_record, audit_seal
from governance.models import AuditEntry

CHANGELIST = "admin:governance_auditentry_changelist"


def record(n=1, verb="test.action"):
    with transaction.atomic():
        return [audit_record(actor="alice", verb=verb, target_type="thing", target_id=i, details={"i": i})
                for i in range(n)]


def dac_audit_verify():
    out, err = StringIO(), StringIO()
    call_command("dac", "audit", "verify", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_seal_task_seals_and_logs_only_when_it_sealed_something(db, caplog):
    record(3)
    with caplog.at_level(logging.INFO, logger="governance.tasks"):
        assert tasks.audit_seal() == 3
        assert tasks.audit_seal() == 0
    assert [r.getMessage() for r in caplog.records if r.name == "governance.tasks"] == ["audit: sealed 3 entries"]
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()


def test_the_seal_task_is_scheduled_and_registered():
    entry = settings.CELERY_BEAT_SCHEDULE["dac-audit-seal"]
    assert entry["task"] == "governance.tasks.audit_seal" == tasks.audit_seal.name
    assert entry["schedule"] > 0
    from dacproject.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovery included
    assert "governance.tasks.audit_seal" in app.tasks


def test_dac_audit_verify_seals_then_verifies(db):
    record(4)
    out, _ = dac_audit_verify()
    assert "audit chain intact: 4 entries verified (0 awaiting seal)" in out
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()

    tampered = AuditEntry.objects.get(seq=2)
    AuditEntry.objects.filter(pk=tampered.pk).update(actor_name="mallory")
    err = StringIO()
    with pytest.raises(CommandError, match="NOT intact: 1 problem"):
        call_command("dac", "audit", "verify", stdout=StringIO(), stderr=err)
    assert f"entry {tampered.id}: content does not match its hash (edited)" in err.getvalue()


def test_console_log_shows_seq_and_whether_sealed(admin_client, db):
    record(2, verb="sealed.action")
    audit_seal()
    unsealed, = record(1, verb="unsealed.action")
    response = admin_client.get(reverse(CHANGELIST))
    content = response.content.decode()
    assert content.count('class="field-seq"') == 3 and content.count('class="field-sealed"') == 3
    assert content.count('alt="True"') == 2 and content.count('alt="False"') == 1

    page = admin_client.get(reverse("admin:governance_auditentry_change", args=[unsealed.pk]))
    assert page.status_code == 200 and "unsealed.action" in page.content.decode()


def test_console_entry_page_shows_seq_and_hashes_once_sealed(admin_client, db):
    entry, = record(1)
    audit_seal()
    entry.refresh_from_db()
    content = admin_client.get(reverse("admin:governance_auditentry_change", args=[entry.pk])).content.decode()
    assert entry.hash in content and entry.prev_hash in content


def test_verify_chain_in_the_console_seals_first(admin_client, db):
    record(3)
    response = admin_client.get(reverse("admin:governance_auditentry_verify"), follow=True)
    assert "Audit chain intact: 3 entries verified." in response.content.decode()
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()
