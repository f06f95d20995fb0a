"""The instance pages after issue 10 (points 3-5): the DAG with item progress and step details, the
"failing" field in words, times with seconds, unfinished durations that count, step-run rows
without Django's header line, a History page made of the audit log, and a list that fits.

Data is made by the real services, in-process (no worker): see tests/orchestration/test_admin.py.
"""
import json
import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from dacproject.ids import short_id
from governance.models import AuditEntry
from orchestration import engine
from orchestration.engine.execute import run_attempt
from orchestration.models import StepItem, StepRun, WorkflowInstance
from orchestration.states import InstanceStatus, StepStatus
from tests.orchestration.test_admin import LINEAR, count_queries, decide_url, page, register, start

GATED = """
id: page-gated
steps:
  - id: gate
    action: noop
    approval: {type: production_deployment, approvers: [tech_lead]}
  - {id: after, action: noop, depends_on: [gate]}
"""

FOREACH = """
id: page-foreach
steps:
  - id: fan
    action: echo
    foreach: "{{ context.items | default([1, 2, 3]) }}"
    with: {value: "{{ item }}"}
  - {id: after, action: noop, depends_on: [fan]}
"""

CHANGELIST = "admin:orchestration_workflowinstance_changelist"
WITH_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def history(instance):
    return reverse("admin:orchestration_workflowinstance_history", args=[instance.id])


def text_of(response):
    return response.content.decode()


def run_items(instance, step_id, count):
    """Run `count` of a foreach step's items in this process, as the run_item task would."""
    run = StepRun.objects.get(instance_id=instance.id, step_id=step_id)
    for item in StepItem.objects.filter(step_run=run, status=StepStatus.READY).order_by("index")[:count]:
        claim = engine.item_claim(step_run_id=run.id, index=item.index, attempt=1, task_id=f"t-{item.pk}",
                                  worker="test-worker")
        engine.item_attempt_finish(claim=claim, outcome=run_attempt(claim))


@pytest.fixture
def workflows(db):
    for text in (LINEAR, GATED, FOREACH):
        register(text)


@pytest.fixture
def running(workflows):
    """console-linear with its first step running for 42 s."""
    instance = start("console-linear")
    run = StepRun.objects.get(instance_id=instance.id, step_id="first")
    assert engine.step_claim(step_run_id=run.id, attempt=1, task_id="t-1", worker="test-worker") is not None
    StepRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=42))
    return instance


@pytest.fixture
def failed(workflows, admin_client):
    instance = start("page-gated")
    admin_client.post(decide_url(instance), {"step_id": "gate", "decision": "reject", "comment": "not now"})
    assert WorkflowInstance.objects.get(id=instance.id).status == InstanceStatus.FAILED
    return instance


# --- "failing" ----------------------------------------------------------------------------------

def failing_field(content):
    field = content[content.index("field-failing_state"):]
    return field[:field.index("</div>")]


def test_failing_says_no_for_a_healthy_instance_without_a_red_cross(admin_client, running):
    content = text_of(admin_client.get(page(running)))
    assert ">no<" in failing_field(content)
    assert "icon-no.svg" not in content and "icon-yes.svg" not in content


def test_failing_says_which_step_failed_without_a_green_tick(admin_client, failed):
    content = text_of(admin_client.get(page(failed)))
    assert "yes: step &#x27;gate&#x27; failed" in failing_field(content)
    assert "icon-yes.svg" not in content and "icon-no.svg" not in content


# --- times and durations ------------------------------------------------------------------------

def test_times_on_the_instance_page_have_seconds(admin_client, running):
    instance = WorkflowInstance.objects.get(id=running.id)
    content = text_of(admin_client.get(page(running)))
    created = timezone.localtime(instance.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert f">{created}</time>" in content
    run = StepRun.objects.get(instance_id=running.id, step_id="first")
    started = timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M:%S")
    inline = content[content.index('id="step_runs-group"'):]
    assert f">{started}</time>" in inline
    assert " p.m." not in content and " a.m." not in content  # Django's format without seconds
    lineage = content[content.index('id="dac-lineage"'):content.index("</ul>", content.index('id="dac-lineage"'))]
    assert f"started {created}" in lineage and "+00:00" not in lineage  # not ISO with microseconds


def test_a_running_step_shows_the_time_so_far_and_keeps_counting(admin_client, running):
    content = text_of(admin_client.get(page(running)))
    inline = content[content.index('id="step_runs-group"'):]
    row = inline[inline.index('class="field-duration"'):]
    row = row[:row.index("</td>")]
    match = re.search(r'data-dac-elapsed="([\d.]+)"[^>]*>([^<]+)<', row)
    assert match, row
    assert 42 <= float(match.group(1)) < 60
    assert re.fullmatch(r"4\d\.\ds", match.group(2)), match.group(2)  # not 0.0s
    assert "setInterval(tick, 1000)" in content  # the page's script keeps it counting


def test_step_run_rows_have_no_header_line_and_link_their_step(admin_client, running):
    content = text_of(admin_client.get(page(running)))
    inline = content[content.index('id="step_runs-group"'):]
    inline = inline[:inline.index("</fieldset>")]
    assert f"{running.id}/first" not in inline  # the stray "<id>/first View" line
    assert "inlineviewlink" not in inline and "has_original" not in inline and ">View<" not in inline
    first = StepRun.objects.get(instance_id=running.id, step_id="first")
    assert f'<a href="{reverse("admin:orchestration_steprun_change", args=[first.pk])}">first</a>' in inline


def test_step_run_page_rows_have_no_header_line_either(admin_client, workflows):
    instance = start("page-foreach")
    run_items(instance, "fan", 1)
    run = StepRun.objects.get(instance_id=instance.id, step_id="fan")
    content = text_of(admin_client.get(reverse("admin:orchestration_steprun_change", args=[run.pk])))
    assert f"{run.pk}[0]" not in content and f"{run.pk} #1" not in content
    assert "inlineviewlink" not in content
    assert WITH_SECONDS.search(content)


# --- the DAG: progress and details --------------------------------------------------------------

def test_the_dag_shows_foreach_progress_and_each_steps_details(admin_client, workflows):
    instance = start("page-foreach")
    run_items(instance, "fan", 2)
    content = text_of(admin_client.get(page(instance)))
    node = re.search(r'<g class="dac-dag-node" data-step="fan"[^>]*>', content).group(0)
    assert 'data-progress="2/3"' in node
    details = json.loads(unescape(re.search(r'data-details="([^"]*)"', node).group(1)))
    assert details["status"] == "running" and details["items"] == "2/3 done" and details["attempts"] == "1"
    assert WITH_SECONDS.fullmatch(details["started"])
    assert details["_elapsed"] >= 0  # unfinished: the page keeps its duration counting
    assert 'data-link="/admin/orchestration/steprun/' in node
    assert "running · 2/3" in content
    assert 'id="dac-dag-details"' in content  # where a click shows them
    assert 'width="100%"' in content and "viewBox=" in content


def test_a_failed_steps_details_carry_its_error(admin_client, failed):
    content = text_of(admin_client.get(page(failed)))
    node = re.search(r'<g class="dac-dag-node" data-step="gate"[^>]*>', content).group(0)
    details = json.loads(unescape(re.search(r'data-details="([^"]*)"', node).group(1)))
    assert details["status"] == "failed" and "Rejected" in details["error"] and "finished" in details


def test_the_instance_page_still_costs_the_same_queries_with_more_steps_and_items(admin_client, workflows):
    small = start("console-linear")
    fan = engine.instance_start(workflow="page-foreach", context={"items": list(range(40))}, actor="test")
    run_items(fan, "fan", 10)
    admin_client.get(page(small))
    assert count_queries(admin_client, page(small)) == count_queries(admin_client, page(fan))


# --- History: the audit log's entries -----------------------------------------------------------

def test_history_lists_the_audit_entries_newest_first_with_actor_and_seconds(admin_client, admin_user, running):
    engine.instance_pause(instance_id=running.id, actor=admin_user)
    engine.instance_resume(instance_id=running.id, actor=admin_user)
    response = admin_client.get(history(running))
    assert response.status_code == 200
    content = text_of(response)
    assert "doesn’t have a change history" not in content and "no entries" not in content
    rows = re.findall(r'<tr class="dac-history-entry">(.*?)</tr>', content, re.S)
    verbs = [re.search(r"<code>([\w.]+)</code>", row).group(1) for row in rows]
    assert verbs == ["instance.resume", "instance.pause", "instance.start"]
    assert admin_user.username in rows[0] and "test" in rows[2]  # the actors
    assert all(WITH_SECONDS.search(row) for row in rows)
    assert "3 audit entries" in content
    entry = AuditEntry.objects.get(verb="instance.start", target_id=str(running.id))
    assert reverse("admin:governance_auditentry_change", args=[entry.pk]) in rows[2]
    assert "&quot;workflow&quot;: &quot;console-linear&quot;" in rows[2]  # its details


def test_history_includes_the_decisions_on_the_instances_escalations(admin_client, failed):
    content = text_of(admin_client.get(history(failed)))
    assert "escalation.create" in content and "escalation.decide" in content
    assert "not now" in content  # the decision's comment, in its details
    other = start("page-gated")
    assert str(other.id) not in content  # another instance's entries stay on its own page


def test_history_of_an_instance_is_visible_to_a_viewer_without_audit_links(client, running):
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_workflowinstance"))
    client.force_login(viewer)
    content = text_of(client.get(history(running)))
    assert "instance.start" in content
    assert "/admin/governance/auditentry/" not in content


# --- the list -----------------------------------------------------------------------------------

def test_the_list_shows_short_ids_linking_to_the_page_with_the_full_id_on_hover(admin_client, running):
    content = text_of(admin_client.get(reverse(CHANGELIST)))
    full = str(running.id)
    assert (f'<a href="{page(running)}"><code class="dac-short-id" title="{full}">{short_id(full)}</code></a>'
            in content)
    assert f">{full}<" not in content  # the whole id is never the cell's text
    assert 'class="column-duration' in content


def test_the_list_shows_durations_running_so_far_and_finished(admin_client, running, failed):
    content = text_of(admin_client.get(reverse(CHANGELIST)))
    rows = {instance_id: row for row in re.findall(r"<tr>(.*?)</tr>", content, re.S)
            for instance_id in (str(running.id), str(failed.id)) if instance_id in row}
    assert "data-dac-elapsed" in rows[str(running.id)]  # so far, counting
    done = re.search(r'class="field-duration">([^<]+)<', rows[str(failed.id)]).group(1)
    assert re.fullmatch(r"\d+\.\ds", done)
    times = re.findall(r'<time [^>]*title="([^"]+)">([^<]+)</time>', rows[str(failed.id)])
    assert len(times) == 2  # created, finished
    for title, text in times:  # today's times without the date (the full time on hover), with seconds
        assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", text) and WITH_SECONDS.match(title) and title.endswith(text + " UTC")


def test_list_times_leave_out_only_the_obvious_part_and_pages_show_them_whole():
    from datetime import UTC, datetime

    from orchestration.admin.common import display_time, format_time

    now = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)

    def shown(value, **options):
        return re.search(r">([^<]+)</time>", str(format_time(value, now=now, **options))).group(1)

    assert shown(datetime(2025, 11, 30, 4, 2, 13, tzinfo=UTC), compact=True) == "04:02:13"
    assert shown(datetime(2025, 11, 29, 4, 2, 13, tzinfo=UTC), compact=True) == "Nov 29 04:02:13"
    assert shown(datetime(2024, 11, 29, 4, 2, 13, tzinfo=UTC), compact=True) == "2024-11-29 04:02:13"
    assert shown(datetime(2025, 11, 30, 4, 2, 13, tzinfo=UTC)) == "2025-11-30 04:02:13"
    assert 'title="2025-11-30 04:02:13 UTC"' in str(format_time(datetime(2025, 11, 30, 4, 2, 13, tzinfo=UTC)))
    assert display_time("2025-11-30T04:02:13.780741+00:00") == "2025-11-30 04:02:13"  # the lineage panel's
    assert display_time("not a time") == "not a time"


def test_the_graph_view_gives_the_page_its_dag_to_redraw(admin_client, running, client):
    url = reverse("admin:orchestration_workflowinstance_graph", args=[running.id])
    body = admin_client.get(url).json()
    assert body["id"] == str(running.id) and body["status"] == running.status and body["finished"] is False
    statuses = dict(StepRun.objects.filter(instance=running).values_list("step_id", "status"))
    for step_id, status in statuses.items():
        assert f'data-step="{step_id}" data-status="{status}"' in body["svg"]
    assert f'data-url="{url}"' in admin_client.get(page(running)).content.decode()
    assert client.get(url).status_code == 302  # the admin's login, for anyone not logged in
    missing = reverse("admin:orchestration_workflowinstance_graph", args=["00000000-0000-0000-0000-000000000000"])
    assert admin_client.get(missing).status_code == 404
