"""The engine console: read-only pages, lifecycle actions and approvals that call the engine's services.

Data is made by the real services. `instance_start` sends Celery messages only when its
transaction commits, which never happens under the `db` fixture, so no worker is involved;
`work_off` runs ready steps in-process the way the `run_step` task does.
"""
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.escalations.models import Escalation
from governance.models import AuditEntry
from orchestration import engine
from orchestration.dag import STATUS_COLOURS
from orchestration.engine.execute import run_attempt
from orchestration.models import StepAttempt, StepRun, WorkflowInstance
from orchestration.states import InstanceStatus, StepStatus
from registry import services as registry

LINEAR = """
id: console-linear
type: operations
steps:
  - {id: first, action: noop}
  - {id: second, action: noop, depends_on: [first]}
"""

GATED = """
id: console-gated
type: governance
steps:
  - id: gate
    action: noop
    approval: {type: production_deployment, approvers: [tech_lead]}
  - {id: after, action: noop, depends_on: [gate]}
"""

ECHO_SECRET = """
id: console-echo
steps:
  - id: greet
    action: echo
    with: {greeting: hello, token: "{{ secrets.TEST_TOKEN }}"}
"""

WIDE = "id: console-wide\nsteps:\n" + "".join(
    f"  - {{id: s{i}, action: noop, depends_on: [{'s0' if i else ''}]}}\n" for i in range(12))

CHANGELIST = "admin:orchestration_workflowinstance_changelist"


def register(text):
    compiled = registry.compile_source(text, file="console.yaml")
    return registry.definitions_apply(compiled=compiled, actor="test")


def start(workflow):
    return engine.instance_start(workflow=workflow, context={"ticket": 42}, actor="test")


def work_off(instance):
    """Run every ready step of an instance in this process, as the run_step task would."""
    for run in StepRun.objects.filter(instance_id=instance.id, status=StepStatus.READY):
        claim = engine.step_claim(step_run_id=run.id, attempt=run.attempts + 1, task_id=f"task-{run.id}",
                                  worker="test-worker")
        engine.step_attempt_finish(claim=claim, outcome=run_attempt(claim))


def status_of(instance):
    return WorkflowInstance.objects.get(id=instance.id).status


def step_status(instance, step_id):
    return StepRun.objects.get(instance_id=instance.id, step_id=step_id).status


def page(instance):
    return reverse("admin:orchestration_workflowinstance_change", args=[instance.id])


def decide_url(instance):
    return reverse("admin:orchestration_workflowinstance_decide", args=[instance.id])


def operate_url(instance):
    return reverse("admin:orchestration_workflowinstance_operate", args=[instance.id])


def message_texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def run_action(client, action, instances, **extra):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [str(i.id) for i in instances],
                                             **extra})


def rows(response):
    """Rows of a rendered change list."""
    return response.content.decode().count('<tr><td class="action-checkbox">') or response.content.decode().count(
        "<tr><th class=")


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.fixture
def workflows(db):
    for text in (LINEAR, GATED, ECHO_SECRET, WIDE):
        register(text)


@pytest.fixture
def gated(workflows):
    instance = start("console-gated")
    assert step_status(instance, "gate") == StepStatus.WAITING_APPROVAL
    return instance


@pytest.fixture
def running(workflows):
    instance = start("console-linear")
    assert instance.status == InstanceStatus.RUNNING
    return instance


@pytest.fixture
def operator(db):
    """A staff user who may operate instances (change permission) but is not a superuser."""
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="orchestration", codename__in=["view_workflowinstance", "change_workflowinstance",
                                                              "view_steprun"]))
    return user


@pytest.fixture
def viewer(db):
    """A staff user who may only look at instances."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_workflowinstance"))
    return user


# --- lists: filters, search, query counts ---------------------------------------------------

def test_instance_changelist_renders_with_filters_and_search(admin_client, running, gated):
    url = reverse(CHANGELIST)
    response = admin_client.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert str(running.id) in content and str(gated.id) in content
    assert "console-linear" in content and "console-gated" in content
    assert "DAC console" in content
    assert 'value="pause_selected"' in content and 'value="retry_selected"' in content
    assert 'name="comment"' in content  # the action bar's reason box

    by_status = admin_client.get(url, {"status": InstanceStatus.WAITING})
    assert by_status.status_code == 200
    assert str(gated.id) in by_status.content.decode() and str(running.id) not in by_status.content.decode()

    by_definition = admin_client.get(url, {"definition__id__exact": running.definition_id})
    assert str(running.id) in by_definition.content.decode()
    assert str(gated.id) not in by_definition.content.decode()

    midnight = running.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
    by_created = admin_client.get(url, {"created_at__gte": str(midnight),
                                        "created_at__lt": str(midnight + timedelta(days=1))})
    assert by_created.status_code == 200 and str(running.id) in by_created.content.decode()

    by_key = admin_client.get(url, {"q": "console-gated"})
    assert str(gated.id) in by_key.content.decode() and str(running.id) not in by_key.content.decode()

    by_id = admin_client.get(url, {"q": str(running.id)})
    assert str(running.id) in by_id.content.decode() and str(gated.id) not in by_id.content.decode()

    by_id_prefix = admin_client.get(url, {"q": str(gated.id)[:8]})
    assert by_id_prefix.status_code == 200 and str(gated.id) in by_id_prefix.content.decode()


def test_instance_changelist_query_count_does_not_grow_with_rows(admin_client, workflows,
                                                                 django_assert_num_queries,
                                                                 django_assert_max_num_queries):
    url = reverse(CHANGELIST)
    for _ in range(3):
        start("console-linear")
    admin_client.get(url)  # warm up caches (content types, session)
    with_3 = count_queries(admin_client, url)
    for _ in range(27):
        start("console-gated")
    assert WorkflowInstance.objects.count() == 30
    with django_assert_num_queries(with_3):
        response = admin_client.get(url)
    assert rows(response) == 30
    with django_assert_max_num_queries(10):
        admin_client.get(url, {"status": InstanceStatus.WAITING, "q": "console"})


def test_step_run_changelist_renders_filters_and_has_no_n_plus_one(admin_client, workflows,
                                                                   django_assert_num_queries):
    url = reverse("admin:orchestration_steprun_changelist")
    gated = start("console-gated")
    admin_client.get(url)
    with_2 = count_queries(admin_client, url)
    for _ in range(15):
        start("console-linear")
    assert StepRun.objects.count() == 32
    with django_assert_num_queries(with_2):
        response = admin_client.get(url)
    assert "console-linear" in response.content.decode()

    waiting = admin_client.get(url, {"status": StepStatus.WAITING_APPROVAL})
    assert waiting.status_code == 200
    assert rows(waiting) == 1
    assert rows(admin_client.get(url, {"q": "after"})) == 1
    by_instance = admin_client.get(url, {"q": str(gated.id)})
    assert rows(by_instance) == 2
    assert admin_client.get(url, {"instance__definition__id__exact": gated.definition_id}).status_code == 200


def test_step_attempt_pages_show_masked_inputs_and_outputs(admin_client, workflows, django_assert_num_queries):
    instance = start("console-echo")
    work_off(instance)
    assert status_of(instance) == InstanceStatus.COMPLETED
    attempt = StepAttempt.objects.get(step_run__instance_id=instance.id)

    url = reverse("admin:orchestration_stepattempt_changelist")
    admin_client.get(url)
    with_1 = count_queries(admin_client, url)
    for _ in range(5):
        work_off(start("console-echo"))
    assert StepAttempt.objects.count() == 6
    with django_assert_num_queries(with_1):
        assert admin_client.get(url, {"status": "succeeded"}).status_code == 200

    detail = admin_client.get(reverse("admin:orchestration_stepattempt_change", args=[attempt.id]))
    content = detail.content.decode()
    assert detail.status_code == 200
    assert "hello" in content and "***" in content
    assert "s3cr3t-test-token-value" not in content

    run_page = admin_client.get(reverse("admin:orchestration_steprun_change", args=[attempt.step_run_id]))
    assert run_page.status_code == 200 and "test-worker" in run_page.content.decode()


# --- the instance page ----------------------------------------------------------------------

def test_instance_page_draws_the_dag_coloured_by_step_status(admin_client, gated):
    response = admin_client.get(page(gated))
    assert response.status_code == 200
    content = response.content.decode()
    assert "<svg" in content
    assert 'data-step="gate"' in content and 'data-step="after"' in content
    assert STATUS_COLOURS[StepStatus.WAITING_APPROVAL][0] in content
    assert STATUS_COLOURS[StepStatus.PENDING][0] in content
    # the drawing comes before the step runs, and the data is shown as pretty JSON
    assert content.index("<svg") < content.index('id="step_runs-group"')
    assert "&quot;ticket&quot;: 42" in content
    # an approval form for the parked step, with a comment box
    assert decide_url(gated) in content
    assert 'name="step_id" value="gate"' in content and 'name="comment"' in content
    assert "production_deployment" in content


def test_instance_page_query_count_does_not_grow_with_steps(admin_client, running, django_assert_num_queries):
    wide = start("console-wide")
    assert StepRun.objects.filter(instance_id=wide.id).count() == 12
    admin_client.get(page(running))
    with_2_steps = count_queries(admin_client, page(running))
    with django_assert_num_queries(with_2_steps):
        response = admin_client.get(page(wide))
    assert response.content.decode().count('class="dac-dag-node"') == 12


def test_instance_page_is_read_only(admin_client, running):
    content = admin_client.get(page(running)).content.decode()
    assert 'name="_save"' not in content
    assert 'name="_continue"' not in content
    assert "/delete/" not in content
    # the operations the instance's status allows, as POST buttons
    assert 'value="pause"' in content and 'value="terminate"' in content
    assert 'value="resume"' not in content and 'value="retry"' not in content


# --- approvals ------------------------------------------------------------------------------

def test_approve_through_the_console_readies_the_step_and_audits_the_admin(admin_client, admin_user, gated):
    response = admin_client.post(decide_url(gated), {"step_id": "gate", "decision": "approve",
                                                      "comment": "looks good"})
    assert response.status_code == 302 and response.url == page(gated)
    assert step_status(gated, "gate") == StepStatus.READY
    run = StepRun.objects.get(instance_id=gated.id, step_id="gate")
    assert (run.approved_by, run.decision_comment) == (admin_user.username, "looks good")
    entry = AuditEntry.objects.filter(verb="escalation.decide").latest("id")
    assert entry.actor_name == admin_user.username
    assert entry.actor_id == admin_user.id
    assert (entry.details["decision"], entry.details["comment"]) == ("approve", "looks good")
    assert entry.target_id == str(Escalation.objects.get(instance_id=gated.id, step_id="gate").id)
    assert any("approve recorded" in m for m in message_texts(response))


def test_reject_through_the_console_fails_the_step(admin_client, admin_user, gated):
    response = admin_client.post(decide_url(gated), {"step_id": "gate", "decision": "reject", "comment": "no"})
    assert response.status_code == 302
    run = StepRun.objects.get(instance_id=gated.id, step_id="gate")
    assert run.status == StepStatus.FAILED
    assert run.error["type"] == "Rejected" and "no" in run.error["message"]
    assert status_of(gated) == InstanceStatus.FAILED
    entry = AuditEntry.objects.filter(verb="escalation.decide").latest("id")
    assert (entry.actor_name, entry.details["decision"], entry.details["comment"]) == (
        admin_user.username, "reject", "no")


def test_deciding_a_step_that_is_not_waiting_reports_an_error(admin_client, gated):
    admin_client.post(decide_url(gated), {"step_id": "gate", "decision": "approve", "comment": ""})
    again = admin_client.post(decide_url(gated), {"step_id": "gate", "decision": "reject", "comment": "too late"})
    assert again.status_code == 302
    assert any("not waiting for approval" in m for m in message_texts(again))
    assert step_status(gated, "gate") == StepStatus.READY
    unknown = admin_client.post(decide_url(gated), {"step_id": "nope", "decision": "approve"}, follow=True)
    assert unknown.status_code == 200 and "has no step" in unknown.content.decode()
    other = start("console-gated")
    bad = admin_client.post(decide_url(other), {"step_id": "gate", "decision": "maybe"})
    assert bad.status_code == 302 and any("unknown option 'maybe'" in m for m in message_texts(bad))
    assert step_status(other, "gate") == StepStatus.WAITING_APPROVAL


def test_decide_and_operate_are_post_only(admin_client, gated):
    assert admin_client.get(decide_url(gated)).status_code == 405
    assert admin_client.get(operate_url(gated)).status_code == 405
    assert step_status(gated, "gate") == StepStatus.WAITING_APPROVAL


def test_decide_on_an_unknown_instance_is_a_message_not_a_500(admin_client, db):
    missing = uuid.uuid4()
    response = admin_client.post(reverse("admin:orchestration_workflowinstance_decide", args=[missing]),
                                 {"step_id": "gate", "decision": "approve"})
    assert response.status_code == 302
    assert any("not found" in m for m in message_texts(response))


def test_decide_is_csrf_protected(admin_user, gated):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(decide_url(gated), {"step_id": "gate", "decision": "approve"})
    assert response.status_code == 403
    assert step_status(gated, "gate") == StepStatus.WAITING_APPROVAL


def test_operating_is_not_deciding_only_an_approver_group_member_may_decide(client, operator, viewer, gated):
    """Change permission lets a user operate instances; deciding is the governance service's
    check: a member of one of the gate's approver groups (here `tech_lead`)."""
    client.force_login(operator)
    refused = client.post(decide_url(gated), {"step_id": "gate", "decision": "approve", "comment": "ok"})
    assert any("none of the approver groups" in m for m in message_texts(refused))
    assert step_status(gated, "gate") == StepStatus.WAITING_APPROVAL
    assert AuditEntry.objects.filter(verb="escalation.refused").latest("id").actor_name == "operator"
    viewer.groups.add(Group.objects.create(name="tech_lead"))
    client.force_login(viewer)
    assert decide_url(gated) in client.get(page(gated)).content.decode()
    decided = client.post(decide_url(gated), {"step_id": "gate", "decision": "approve", "comment": "ok"})
    assert step_status(gated, "gate") == StepStatus.READY, message_texts(decided)
    assert AuditEntry.objects.filter(verb="escalation.decide").latest("id").actor_name == "viewer"


def test_a_viewer_sees_the_instance_but_cannot_decide_or_operate(client, viewer, gated):
    client.force_login(viewer)
    response = client.get(page(gated))
    assert response.status_code == 200
    content = response.content.decode()
    assert "<svg" in content and operate_url(gated) not in content
    refused = client.post(decide_url(gated), {"step_id": "gate", "decision": "approve"})
    assert any("none of the approver groups" in m for m in message_texts(refused))
    assert client.post(operate_url(gated), {"operation": "terminate"}).status_code == 403
    run_action(client, "terminate_selected", [gated])
    assert step_status(gated, "gate") == StepStatus.WAITING_APPROVAL
    assert status_of(gated) == InstanceStatus.WAITING


def test_a_non_staff_user_is_sent_to_the_login_page(client, gated):
    user = User.objects.create_user("outsider", password="pw")
    client.force_login(user)
    for response in (client.get(reverse(CHANGELIST)), client.get(page(gated)),
                     client.post(decide_url(gated), {"step_id": "gate", "decision": "approve"})):
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))
    assert step_status(gated, "gate") == StepStatus.WAITING_APPROVAL


# --- lifecycle actions --------------------------------------------------------------------

def test_pause_and_resume_actions_from_the_list(admin_client, admin_user, running):
    response = run_action(admin_client, "pause_selected", [running])
    assert response.status_code == 302
    assert status_of(running) == InstanceStatus.PAUSED
    assert any("Paused 1 instance" in m for m in message_texts(response))
    assert AuditEntry.objects.filter(verb="instance.pause").latest("id").actor_name == admin_user.username

    run_action(admin_client, "resume_selected", [running])
    assert status_of(running) == InstanceStatus.RUNNING


def test_an_illegal_transition_is_reported_per_instance_not_a_500(admin_client, running, gated):
    response = run_action(admin_client, "resume_selected", [running, gated])
    assert response.status_code == 302
    texts = message_texts(response)
    assert any(str(running.id) in m and "cannot resume an instance that is running" in m for m in texts)
    assert any(str(gated.id) in m and "cannot resume an instance that is waiting" in m for m in texts)
    assert status_of(running) == InstanceStatus.RUNNING

    followed = run_action(admin_client, "retry_selected", [running])
    assert any("cannot retry" in m for m in message_texts(followed))


def test_terminate_action_records_the_reason_and_reports_each_result(admin_client, running, gated):
    engine.instance_terminate(instance_id=gated.id, actor="test")
    response = run_action(admin_client, "terminate_selected", [running, gated], comment="wrong input")
    texts = message_texts(response)
    assert status_of(running) == InstanceStatus.TERMINATED
    assert step_status(running, "first") == StepStatus.CANCELLED
    assert WorkflowInstance.objects.get(id=running.id).error["message"] == "wrong input"
    assert AuditEntry.objects.filter(verb="instance.terminate", target_id=str(running.id)).get().details == {
        "reason": "wrong input"}
    assert any("Terminated 1 instance" in m for m in texts)
    assert any(str(gated.id) in m and "cannot terminate" in m for m in texts)


def test_retry_action_reruns_a_failed_instance(admin_client, gated):
    admin_client.post(decide_url(gated), {"step_id": "gate", "decision": "reject", "comment": "not yet"})
    assert status_of(gated) == InstanceStatus.FAILED
    response = run_action(admin_client, "retry_selected", [gated])
    assert any("Retried 1 instance" in m for m in message_texts(response))
    # the rejected gate runs again: it parks for a new decision, so the instance waits
    assert step_status(gated, "gate") == StepStatus.WAITING_APPROVAL
    assert status_of(gated) == InstanceStatus.WAITING
    assert AuditEntry.objects.filter(verb="instance.retry", target_id=str(gated.id)).exists()


def test_instance_page_buttons_call_the_services(admin_client, running):
    response = admin_client.post(operate_url(running), {"operation": "pause"})
    assert response.status_code == 302 and response.url == page(running)
    assert status_of(running) == InstanceStatus.PAUSED
    assert 'value="resume"' in admin_client.get(page(running)).content.decode()

    admin_client.post(operate_url(running), {"operation": "resume"})
    assert status_of(running) == InstanceStatus.RUNNING
    again = admin_client.post(operate_url(running), {"operation": "resume"})
    assert any("cannot resume an instance that is running" in m for m in message_texts(again))
    unknown = admin_client.post(operate_url(running), {"operation": "explode"})
    assert any("Unknown operation" in m for m in message_texts(unknown))

    admin_client.post(operate_url(running), {"operation": "terminate", "comment": "stop"})
    assert status_of(running) == InstanceStatus.TERMINATED
    assert AuditEntry.objects.filter(verb="instance.terminate").latest("id").details == {"reason": "stop"}


# --- engine state cannot be edited ------------------------------------------------------------

@pytest.mark.parametrize("model", ["workflowinstance", "steprun", "stepattempt", "event"])
def test_engine_state_cannot_be_added(admin_client, model):
    assert admin_client.get(reverse(f"admin:orchestration_{model}_add")).status_code == 403


def test_engine_state_cannot_be_changed_or_deleted(admin_client, running):
    run = StepRun.objects.filter(instance_id=running.id).first()
    delete_instance = reverse("admin:orchestration_workflowinstance_delete", args=[running.id])
    assert admin_client.get(delete_instance).status_code == 403
    assert admin_client.get(reverse("admin:orchestration_steprun_delete", args=[run.id])).status_code == 403
    response = admin_client.post(page(running), {"status": "completed", "_save": "Save"})
    assert response.status_code == 403
    assert status_of(running) == InstanceStatus.RUNNING
    step_page = reverse("admin:orchestration_steprun_change", args=[run.id])
    assert admin_client.post(step_page, {"status": "completed"}).status_code == 403
    assert 'value="delete_selected"' not in admin_client.get(reverse(CHANGELIST)).content.decode()
