"""The audit log in the console: read-only, filterable, linked to its targets, verifiable."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.audit import audit_seal
from governance.models import AuditEntry
from orchestration import engine
from registry import services as registry

WORKFLOW = """
id: audited-flow
steps:
  - {id: only, action: noop}
"""

CHANGELIST = "admin:governance_auditentry_changelist"


def rows(response):
    return response.content.decode().count("<tr><th class=")


@pytest.fixture
def audited(db):
    """A definitions.apply entry and two instance.start entries, all written by the services."""
    registry.definitions_apply(compiled=registry.compile_source(WORKFLOW, file="audit.yaml"), actor="test")
    return [engine.instance_start(workflow="audited-flow", context={}, actor=actor) for actor in ("alice", "bob")]


def test_audit_changelist_renders_with_filters_and_search(admin_client, audited):
    url = reverse(CHANGELIST)
    response = admin_client.get(url)
    assert response.status_code == 200
    assert rows(response) == 3
    content = response.content.decode()
    assert "definitions.apply" in content and "instance.start" in content
    # an instance target links to the instance's console page
    assert reverse("admin:orchestration_workflowinstance_change", args=[audited[0].id]) in content
    assert "Verify chain" in content

    assert rows(admin_client.get(url, {"verb": "instance.start"})) == 2
    assert rows(admin_client.get(url, {"actor_name": "alice"})) == 1
    assert rows(admin_client.get(url, {"target_type": "workflow"})) == 1
    assert rows(admin_client.get(url, {"q": str(audited[1].id)})) == 1


def test_audit_changelist_query_count_does_not_grow_with_rows(admin_client, audited, django_assert_num_queries):
    url = reverse(CHANGELIST)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as before:
        admin_client.get(url)
    for _ in range(30):
        engine.instance_start(workflow="audited-flow", context={}, actor="carol")
    assert AuditEntry.objects.count() == 33
    with django_assert_num_queries(len(before)):
        assert rows(admin_client.get(url)) == 33


def test_audit_entry_page_shows_details_and_hashes(admin_client, audited):
    audit_seal()  # rows are hashed by the sealer, not at insert time
    entry = AuditEntry.objects.get(verb="definitions.apply")
    response = admin_client.get(reverse("admin:governance_auditentry_change", args=[entry.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert entry.hash in content and entry.prev_hash in content
    assert "&quot;workflows&quot;: [" in content
    assert 'name="_save"' not in content


def test_audit_log_cannot_be_added_changed_or_deleted(admin_client, audited):
    entry = AuditEntry.objects.first()
    assert admin_client.get(reverse("admin:governance_auditentry_add")).status_code == 403
    assert admin_client.get(reverse("admin:governance_auditentry_delete", args=[entry.pk])).status_code == 403
    response = admin_client.post(reverse("admin:governance_auditentry_change", args=[entry.pk]),
                                 {"actor_name": "mallory", "verb": "nothing"})
    assert response.status_code == 403
    assert 'value="delete_selected"' not in admin_client.get(reverse(CHANGELIST)).content.decode()
    entry.refresh_from_db()
    assert entry.actor_name == "test"
    admin = admin_client.get(reverse("admin:governance_auditentry_changelist"))
    assert admin.context["cl"].model_admin.has_add_permission(admin.wsgi_request) is False


def test_verify_chain_reports_an_intact_chain_and_an_edit(admin_client, audited):
    intact = admin_client.get(reverse("admin:governance_auditentry_verify"), follow=True)
    assert intact.status_code == 200
    assert "Audit chain intact: 3 entries verified." in intact.content.decode()

    tampered = AuditEntry.objects.get(verb="definitions.apply")
    AuditEntry.objects.filter(pk=tampered.pk).update(actor_name="mallory")
    broken = admin_client.get(reverse("admin:governance_auditentry_verify"), follow=True)
    assert f"Entry {tampered.id}: content does not match its hash (edited)" in broken.content.decode()


def test_a_non_staff_user_is_sent_to_login(client, audited, django_user_model):
    client.force_login(django_user_model.objects.create_user("outsider", password="pw"))
    for url in (reverse(CHANGELIST), reverse("admin:governance_auditentry_verify")):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))
