"""The approval inbox in the console (DESIGN §7.3): what the logged-in user may decide, open ones
first by deadline, level/type/workflow filters; an escalation's page with what the approver is
shown, the instance's DAG and a button per option; decide and reassign as POSTs to the governance
services (so their checks hold here); the pending-count badge on every console page.

Gates are opened by the real engine under the `db` fixture: a gated step without dependencies
parks within `start()`, and no Celery message leaves an uncommitted transaction, so no worker is
involved (an approved step is left `ready`)."""
import re

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.escalations.models import Escalation
from governance.escalations.services import escalation_decide
from governance.models import AuditEntry
from governance.notifications.models import NotificationDelivery
from orchestration.dag import STATUS_COLOURS
from orchestration.models import StepRun
from tests.support.helpers import apply_spec, start
from tests.support.people import FAST_HASHERS

CHANGELIST = "admin:governance_escalation_changelist"
CHANGE_URL = re.compile(r"/admin/governance/escalation/([0-9a-f-]{36})/change/")
BADGE = re.compile(r'id="dac-inbox-badge"[^>]*>\s*(\d+)\s*<')


def gated(workflow, *, approvers=("tech_lead",), with_=None, **approval):
    """`ship` waits for approval (no dependencies: it parks within start()); `after` follows it."""
    apply_spec({"id": workflow, "type": "operations", "steps": [
        {"id": "prepare", "action": "echo", "with": {"n": 1}},
        {"id": "ship", "action": "echo", "with": with_ or {"sha": "{{ context.sha }}", "target": "production"},
         "approval": {"approvers": list(approvers), **approval}},
        {"id": "after", "action": "noop", "depends_on": ["ship", "prepare"]},
    ]})


def gate_of(instance, step_id="ship"):
    return Escalation.objects.get(instance_id=instance.id, step_id=step_id)


def step_status(instance, step_id="ship"):
    return StepRun.objects.get(instance_id=instance.id, step_id=step_id).status


def inbox(client, **query):
    response = client.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    return response


def listed(response):
    """Escalation ids in the order the change list shows them."""
    seen = []
    for key in CHANGE_URL.findall(response.content.decode()):
        if key not in seen:
            seen.append(key)
    return seen


def ids(*instances):
    return [str(gate_of(i).id) for i in instances]


def page(escalation):
    return reverse("admin:governance_escalation_change", args=[escalation.id])


def decide_url(escalation):
    return reverse("admin:governance_escalation_decide", args=[escalation.id])


def assign_url(escalation):
    return reverse("admin:governance_escalation_assign", args=[escalation.id])


def message_texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def badge(client):
    content = client.get(reverse("admin:index")).content.decode()
    found = BADGE.search(content)
    assert found, "no #dac-inbox-badge on the admin index"
    return int(found.group(1))


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def untouched(escalation, instance):
    fresh = Escalation.objects.get(id=escalation.id)
    assert (fresh.status, fresh.resolution, fresh.assignee_id) == ("pending", "", escalation.assignee_id)
    assert not fresh.decisions.exists()
    assert step_status(instance) == "waiting_approval"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture
def inboxes(fast_passwords, people):
    """Gates with deadlines in 2 h, 30 min and none (tech_lead), one in 10 min already approved,
    and one for finance in 1 min."""
    gated("later", timeout_minutes=120, type="production_deployment")
    gated("sooner", timeout_minutes=30, type="production_deployment", level="review")
    gated("whenever", type="schema_change")
    gated("done", timeout_minutes=10)
    gated("budget", approvers=["finance"], timeout_minutes=1, type="spend")
    made = {name: start(name, {"sha": name}) for name in ("later", "sooner", "whenever", "done", "budget")}
    escalation_decide(escalation_id=gate_of(made["done"]).id, decision="approve", comment="ok", actor=people["bob"])
    return made


@pytest.fixture
def release(fast_passwords, people):
    gated("release", type="production_deployment", options=["ship", "hold", "reject"], timeout_minutes=60)
    instance = start("release", {"sha": "abc123"})
    assert step_status(instance) == "waiting_approval"
    return instance


# --- the inbox -------------------------------------------------------------------------------

def test_a_member_logs_in_and_sees_what_they_may_decide_open_first_then_by_deadline(client, people, inboxes):
    assert client.login(username="alice", password="pw-alice-123")
    response = inbox(client)
    i = inboxes
    assert listed(response) == ids(i["sooner"], i["later"], i["whenever"], i["done"])
    content = response.content.decode()
    assert "production_deployment" in content and "schema_change" in content and "1/1" in content


def test_carol_sees_finance_dave_sees_all_erin_sees_none(people, inboxes):
    i = inboxes
    assert listed(inbox(logged_in(people["carol"]))) == ids(i["budget"])
    assert listed(inbox(logged_in(people["dave"]))) == ids(i["budget"], i["sooner"], i["later"], i["whenever"],
                                                           i["done"])
    response = inbox(logged_in(people["erin"]))
    assert listed(response) == []
    assert "0 escalations" in response.content.decode()


def test_the_inbox_leaves_out_the_users_own_instances(people, inboxes):
    own = start("later", {"sha": "mine"}, actor=people["alice"])
    assert str(gate_of(own).id) not in listed(inbox(logged_in(people["alice"])))
    assert str(gate_of(own).id) in listed(inbox(logged_in(people["bob"])))


def test_a_user_who_may_decide_any_does_not_see_their_own_instances_either(people, inboxes):
    """The inbox is what the user may decide (DESIGN §7.3); nobody may decide an instance they
    started, `decide_any_escalation` or not. The badge counts it that way too."""
    own = start("later", {"sha": "mine"}, actor=people["dave"])
    dave = logged_in(people["dave"])
    shown = listed(inbox(dave, status__exact="pending"))
    assert badge(dave) == len(shown)
    assert str(gate_of(own).id) not in shown


def test_filters_by_level_type_workflow_and_status(people, inboxes):
    i, dave = inboxes, logged_in(people["dave"])
    assert listed(inbox(dave, level__exact="review")) == ids(i["sooner"])
    assert listed(inbox(dave, type="spend")) == ids(i["budget"])
    assert listed(inbox(dave, type="production_deployment")) == ids(i["sooner"], i["later"])
    assert listed(inbox(dave, workflow="whenever")) == ids(i["whenever"])
    assert listed(inbox(dave, status__exact="resolved")) == ids(i["done"])
    assert listed(inbox(dave, workflow="later", level__exact="approval")) == ids(i["later"])
    # a filter narrows what the user may decide, never widens it
    assert listed(inbox(logged_in(people["alice"]), type="spend")) == []
    content = inbox(dave).content.decode()
    for choice in ("?level__exact=review", "?type=spend", "?workflow=budget"):
        assert choice in content, choice


@pytest.mark.parametrize("query", [{"workflow": "rel\x00ease"}, {"type": "sp\x00end"}, {"q": "sh\x00ip"},
                                   {"level__exact": "bogus"}, {"o": "99"}, {"q": "not-a-uuid"}])
def test_odd_filters_are_not_a_500(people, inboxes, query):
    client = logged_in(people["dave"])
    client.raise_request_exception = False
    response = client.get(reverse(CHANGELIST), query)
    assert response.status_code < 500, f"{response.status_code} for {query!r}"


def test_a_non_staff_user_is_sent_to_the_login_page(client, people, inboxes):
    people["erin"].is_staff = False
    people["erin"].save()
    client.force_login(people["erin"])
    gate = gate_of(inboxes["later"])
    for response in (client.get(reverse(CHANGELIST)), client.get(page(gate)),
                     client.post(decide_url(gate), {"decision": "approve", "comment": "x"})):
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))
    untouched(gate, inboxes["later"])


# --- an escalation's page --------------------------------------------------------------------

def test_the_page_shows_the_resolved_inputs_the_dag_and_a_button_per_option(people, release):
    gate = gate_of(release)
    response = logged_in(people["alice"]).get(page(gate))
    assert response.status_code == 200
    content = response.content.decode()
    assert "abc123" in content and "production" in content  # the step's inputs, resolved
    assert "{{ context.sha }}" not in content
    svg = content[content.index('<div class="dac-dag-wrapper">'):]
    assert svg.index("<svg") < svg.index("</svg>")
    svg = svg[:svg.index("</svg>")]
    for step_id in ("prepare", "ship", "after"):
        assert step_id in svg
    # coloured by step status: ship waits for approval, prepare is ready, after is pending
    for status in ("waiting_approval", "ready", "pending"):
        assert STATUS_COLOURS[status][0] in svg, status
    for option in ("ship", "hold", "reject", "acknowledge"):
        assert re.search(rf'<button[^>]*name="decision"[^>]*value="{option}"', content), option
    assert 'value="approve"' not in content
    assert decide_url(gate) in content and assign_url(gate) in content
    assert 'name="csrfmiddlewaretoken"' in content


def test_the_page_masks_secrets_in_what_it_shows(people, fast_passwords):
    gated("secretive", with_={"token": "{{ secrets.TEST_TOKEN }}", "sha": "{{ context.sha }}"})
    instance = start("secretive", {"sha": "abc"})
    content = logged_in(people["alice"]).get(page(gate_of(instance))).content.decode()
    assert "s3cr3t-test-token-value" not in content


def test_a_page_outside_the_users_inbox_is_not_shown(people, release):
    gate = gate_of(release)
    for who in ("carol", "erin"):
        response = logged_in(people[who]).get(page(gate))
        assert response.status_code == 302 and response.url == reverse("admin:index")


def test_the_admin_configuration_is_valid():
    from django.contrib import admin

    from governance.escalations.admin import EscalationAdmin

    assert EscalationAdmin(Escalation, admin.site).check() == []


@pytest.fixture
def notified(people, settings):
    settings.DAC_NOTIFY_EMAILS = ["lead@example.org"]
    settings.DAC_NOTIFY_WEBHOOK_URL = ""
    gated("notified")
    gate = gate_of(start("notified", {"sha": "n"}))
    (delivery,) = NotificationDelivery.objects.filter(escalation=gate)
    assert (delivery.channel, delivery.target, delivery.event, delivery.status) == (
        "email", "lead@example.org", "created", "pending")
    return gate


def test_a_notification_delivery_appears_on_the_page(notified):
    admin = User.objects.create_superuser("root", password="pw-root-123")
    content = logged_in(admin).get(page(notified)).content.decode()
    assert "lead@example.org" in content
    delivery = NotificationDelivery.objects.get(escalation=notified)
    assert reverse("admin:governance_notificationdelivery_change", args=[delivery.id]) in content


@pytest.mark.parametrize("who", ["alice", "dave"])
def test_the_approver_deciding_is_shown_the_notification_deliveries(people, notified, who):
    """The inbox is for every active staff user (EscalationAdmin.has_view_permission); the page's
    inlines must not vanish for the very people deciding it."""
    content = logged_in(people[who]).get(page(notified)).content.decode()
    assert "lead@example.org" in content, f"{who} is not shown the notification deliveries"


def test_the_approver_is_shown_the_decisions_so_far(people):
    gated("quorum", min_approvals=2)
    gate = gate_of(start("quorum", {"sha": "q"}))
    escalation_decide(escalation_id=gate.id, decision="approve", comment="first-vote-comment", actor=people["alice"])
    content = logged_in(people["bob"]).get(page(gate)).content.decode()
    assert 'name="decision"' in content  # bob may still decide
    assert "first-vote-comment" in content, "bob is not shown alice's decision before deciding"


# --- deciding --------------------------------------------------------------------------------

def test_approve_with_a_comment_resolves_and_the_step_leaves_waiting_approval(people, release):
    gate = gate_of(release)
    client = logged_in(people["alice"])
    response = client.post(decide_url(gate), {"decision": "ship", "comment": "  go ahead  "})
    assert response.status_code == 302 and response.url == page(gate)
    assert any("resolved: ship" in m for m in message_texts(response))
    gate.refresh_from_db()
    assert (gate.status, gate.resolution, gate.resolved_by) == ("resolved", "ship", "alice")
    (decision,) = gate.decisions.all()
    assert (decision.user_name, decision.decision, decision.comment) == ("alice", "ship", "go ahead")
    run = StepRun.objects.get(instance_id=release.id, step_id="ship")
    assert run.status in ("ready", "running") and run.approved_by == "alice"
    assert run.decision["option"] == "ship"
    entry = AuditEntry.objects.get(verb="escalation.decide", target_id=str(gate.id))
    assert (entry.actor_name, entry.actor_id, entry.details["comment"]) == ("alice", people["alice"].id, "go ahead")
    # once decided, the page has no decision form any more
    content = client.get(page(gate)).content.decode()
    assert 'name="decision"' not in content and "ship" in content


def test_reject_needs_a_comment(people, release):
    gate = gate_of(release)
    client = logged_in(people["alice"])
    for comment in ("", "   "):
        response = client.post(decide_url(gate), {"decision": "reject", "comment": comment})
        assert response.status_code == 302
        assert "Give a reason to reject." in message_texts(response)
        untouched(gate, release)
    response = client.post(decide_url(gate), {"decision": "reject", "comment": "not before the audit"})
    gate.refresh_from_db()
    assert (gate.status, gate.resolution) == ("resolved", "rejected")
    assert step_status(release) == "failed"


def test_reject_spelled_rejected_needs_a_comment_too(people, release):
    """The service reads `rejected` as `reject`: the console's rule must hold for it as well."""
    gate = gate_of(release)
    response = logged_in(people["alice"]).post(decide_url(gate), {"decision": "rejected", "comment": ""})
    assert "Give a reason to reject." in message_texts(response)
    untouched(gate, release)


@pytest.mark.parametrize(("url", "body"), [
    (decide_url, {"decision": "ship", "comment": "ok\x00then"}),
    (decide_url, {"decision": "reject", "comment": "x" * 5001}),
    (assign_url, {"user": "bo\x00b"}),
    (assign_url, {"user": "bob", "comment": "ok\x00then"}),
])
def test_text_postgresql_cannot_store_is_an_error_message_not_a_500(people, release, url, body):
    gate = gate_of(release)
    client = logged_in(people["alice"])
    client.raise_request_exception = False
    response = client.post(url(gate), body)
    assert response.status_code == 302, f"{response.status_code} for {body!r}"
    assert message_texts(response)
    untouched(gate, release)


def test_an_unknown_option_is_an_error_message(people, release):
    gate = gate_of(release)
    response = logged_in(people["alice"]).post(decide_url(gate), {"decision": "maybe", "comment": "x"})
    assert any("unknown option 'maybe'" in m for m in message_texts(response))
    missing = logged_in(people["alice"]).post(decide_url(gate), {"comment": "x"})
    assert missing.status_code == 302 and message_texts(missing)
    untouched(gate, release)


def test_acknowledge_from_the_console(people, release):
    gate = gate_of(release)
    logged_in(people["bob"]).post(decide_url(gate), {"decision": "acknowledge"})
    gate.refresh_from_db()
    assert (gate.status, gate.assignee_id) == ("acknowledged", people["bob"].id)
    assert step_status(release) == "waiting_approval"
    # bob took it: he may now decide it
    response = logged_in(people["bob"]).post(decide_url(gate), {"decision": "ship", "comment": "checked"})
    gate.refresh_from_db()
    assert (gate.status, gate.resolution) == ("resolved", "ship"), message_texts(response)


def test_quorum_from_the_console(people, fast_passwords):
    gated("quorum", min_approvals=2)
    instance = start("quorum", {"sha": "q"})
    gate = gate_of(instance)
    first = logged_in(people["alice"]).post(decide_url(gate), {"decision": "approve"})
    assert any("the escalation is pending" in m for m in message_texts(first))
    assert "1/2" in inbox(logged_in(people["bob"])).content.decode()
    again = logged_in(people["alice"]).post(decide_url(gate), {"decision": "approve"})
    assert any("already decided" in m for m in message_texts(again))
    logged_in(people["bob"]).post(decide_url(gate), {"decision": "approve"})
    gate.refresh_from_db()
    assert (gate.status, gate.resolution) == ("resolved", "approved")
    assert step_status(instance) == "ready"


def test_a_non_members_post_is_refused_with_the_reason_and_changes_nothing(people, release):
    gate = gate_of(release)
    for who in ("erin", "carol"):
        response = logged_in(people[who]).post(decide_url(gate), {"decision": "ship", "comment": "mine"})
        assert response.status_code == 302
        assert any(f"user '{who}' is in none of the approver groups" in m for m in message_texts(response))
        untouched(gate, release)
    assert list(AuditEntry.objects.filter(verb="escalation.refused").values_list("actor_name", flat=True)) == [
        "erin", "carol"]


def test_the_starter_is_refused_in_the_console(people, fast_passwords):
    gated("release")
    instance = start("release", {"sha": "x"}, actor=people["alice"])
    gate = gate_of(instance)
    response = logged_in(people["alice"]).post(decide_url(gate), {"decision": "approve", "comment": "mine"})
    assert any("started this instance" in m for m in message_texts(response))
    untouched(gate, instance)


def test_deciding_a_closed_escalation_is_an_error_message(people, release):
    gate = gate_of(release)
    logged_in(people["alice"]).post(decide_url(gate), {"decision": "ship"})
    response = logged_in(people["bob"]).post(decide_url(gate), {"decision": "hold", "comment": "wait"})
    assert any("is resolved as ship by alice" in m for m in message_texts(response))
    assert Escalation.objects.get(id=gate.id).decisions.count() == 1


def test_decide_and_assign_are_post_only(people, release):
    gate = gate_of(release)
    client = logged_in(people["alice"])
    assert client.get(decide_url(gate)).status_code == 405
    assert client.get(assign_url(gate)).status_code == 405
    untouched(gate, release)


def test_decide_and_assign_are_csrf_protected(people, release):
    gate = gate_of(release)
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["alice"])
    assert client.post(decide_url(gate), {"decision": "ship", "comment": "x"}).status_code == 403
    assert client.post(assign_url(gate), {"user": "erin"}).status_code == 403
    untouched(gate, release)
    # with the page's token the same POST goes through
    client.get(page(gate))
    token = client.cookies["csrftoken"].value
    response = client.post(decide_url(gate), {"decision": "ship", "comment": "x", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Escalation.objects.get(id=gate.id).status == "resolved"


def test_an_unknown_escalation_is_a_message_not_a_500(people, db):
    import uuid

    missing = uuid.uuid4()
    client = logged_in(people["alice"])
    for name in ("admin:governance_escalation_decide", "admin:governance_escalation_assign"):
        response = client.post(reverse(name, args=[missing]), {"decision": "approve", "user": "bob"})
        assert response.status_code == 302
        assert any("not found" in m for m in message_texts(response))


# --- reassigning -----------------------------------------------------------------------------

def test_reassign_to_a_user_who_then_sees_and_decides_it(people, release):
    gate = gate_of(release)
    erin = logged_in(people["erin"])
    assert listed(inbox(erin)) == [] and badge(erin) == 0
    content = logged_in(people["alice"]).get(page(gate)).content.decode()
    assert '<option value="bob">' in content  # the approver groups' members are offered
    response = logged_in(people["alice"]).post(assign_url(gate), {"user": "erin", "comment": "erin owns it"})
    assert response.status_code == 302 and response.url == page(gate)
    assert "Reassigned to erin." in message_texts(response)
    gate.refresh_from_db()
    assert gate.assignee == people["erin"]
    assert AuditEntry.objects.get(verb="escalation.assign").details == {"assignee": "erin", "comment": "erin owns it"}
    assert listed(inbox(erin)) == [str(gate.id)] and badge(erin) == 1
    erin.post(decide_url(gate), {"decision": "hold", "comment": "next week"})
    gate.refresh_from_db()
    assert (gate.status, gate.resolution, gate.resolved_by) == ("resolved", "hold", "erin")


def test_reassign_refusals_are_messages(people, release):
    gate = gate_of(release)
    unknown = logged_in(people["alice"]).post(assign_url(gate), {"user": "nobody"})
    assert any("no active user 'nobody'" in m for m in message_texts(unknown))
    refused = logged_in(people["erin"]).post(assign_url(gate), {"user": "erin"})
    assert any("none of the approver groups" in m for m in message_texts(refused))
    untouched(gate, release)


# --- the badge -------------------------------------------------------------------------------

def test_the_badge_counts_open_escalations_the_user_may_decide(people, fast_passwords):
    gated("release")
    gated("budget", approvers=["finance"])
    first, second = start("release", {"sha": "1"}), start("release", {"sha": "2"})
    start("budget", {"sha": "3"})
    alice, erin = logged_in(people["alice"]), logged_in(people["erin"])
    assert badge(alice) == 2
    assert badge(erin) == 0
    assert badge(logged_in(people["carol"])) == 1
    assert badge(logged_in(people["dave"])) == 3
    content = alice.get(reverse("admin:index")).content.decode()
    assert reverse(CHANGELIST) in content and 'class="dac-badge dac-badge-zero"' not in content
    assert 'class="dac-badge dac-badge-zero"' in erin.get(reverse("admin:index")).content.decode()
    # on every console page, not only the index
    for url in (reverse(CHANGELIST), page(gate_of(first))):
        assert int(BADGE.search(alice.get(url).content.decode()).group(1)) == 2, url
    escalation_decide(escalation_id=gate_of(first).id, decision="approve", actor=people["bob"])
    assert badge(alice) == 1
    logged_in(people["bob"]).post(decide_url(gate_of(second)), {"decision": "acknowledge"})
    assert badge(alice) == 1  # acknowledged is still open
    escalation_decide(escalation_id=gate_of(second).id, decision="approve", actor=people["bob"])
    assert badge(alice) == 0


@pytest.mark.parametrize("url_name", ["admin:index", CHANGELIST, "admin:orchestration_workflowinstance_changelist",
                                      "admin:governance_auditentry_changelist",
                                      "admin:governance_notificationdelivery_changelist", "admin:auth_user_changelist",
                                      "admin:password_change"])
def test_the_badge_is_on_every_console_page(people, url_name):
    gated("release")
    start("release", {"sha": "1"})
    root = logged_in(User.objects.create_superuser("root", password="pw-root-123"))
    response = root.get(reverse(url_name))
    assert response.status_code == 200
    found = BADGE.search(response.content.decode())
    assert found and int(found.group(1)) == 1, f"no pending-count badge on {reverse(url_name)}"


# --- query counts ----------------------------------------------------------------------------

def _changelist_queries(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    return len(queries), len(listed(response))


@pytest.mark.parametrize("who", ["alice", "dave"])
def test_inbox_query_count_does_not_grow_with_escalations(people, fast_passwords, who):
    gated("release", min_approvals=2)
    client = logged_in(people[who])

    def add(n):
        for k in range(n):
            gate = gate_of(start("release", {"sha": str(k)}))
            escalation_decide(escalation_id=gate.id, decision="approve", actor=people["bob"])  # 1/2 approvals

    add(3)
    client.get(reverse(CHANGELIST))  # warm caches (content types, session)
    few, shown = _changelist_queries(client)
    assert shown == 3
    add(9)
    many, shown = _changelist_queries(client)
    assert shown == 12
    assert many == few, f"{few} queries for 3 escalations, {many} for 12"
