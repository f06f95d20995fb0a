"""The approval inbox in a real browser: an approver logs in, sees the pending badge, opens the
escalation, reads what they are asked to approve and the DAG, decides, and the instance moves
on on real workers."""
from playwright.sync_api import expect

from governance.escalations.models import Escalation
from orchestration.models import WorkflowInstance
from tests.support.browser import screenshot
from tests.support.helpers import apply_spec, finished, start, wait_until

RELEASE = {"id": "browser-release", "steps": [
    {"id": "build", "action": "echo", "with": {"sha": "4f2a9c1"}},
    {"id": "ship", "action": "echo", "depends_on": ["build"], "with": {"sha": "{{ steps.build.output.sha }}"},
     "approval": {"type": "production_deployment", "approvers": ["tech_lead"], "options": ["ship", "hold", "reject"]}},
    {"id": "announce", "action": "noop", "depends_on": ["ship"]},
]}


def test_an_approver_decides_in_the_inbox_and_the_instance_completes(live, admin_login, page_errors):
    apply_spec(RELEASE)
    instance = start("browser-release")
    gate = wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, status="pending").first(),
                      message="the gate")

    page = admin_login(groups=["tech_lead"], permissions=["orchestration.view_workflowinstance"])
    expect(page.locator("#dac-inbox-badge")).to_have_text("1")
    screenshot(page, "console-index-with-inbox-badge")

    page.click("#dac-inbox-link")
    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("browser-release")
    expect(row).to_contain_text("0/1")
    screenshot(page, "inbox")

    row.locator("a", has_text="approve step 'ship'").click()
    expect(page.locator(".dac-console")).to_contain_text('"sha": "4f2a9c1"')  # what the approver is shown
    ship = page.locator('.dac-dag-node[data-step="ship"]')
    expect(ship).to_have_attribute("data-status", "waiting_approval")
    expect(page.locator('.dac-dag-node[data-step="build"]')).to_have_attribute("data-status", "completed")
    for option in ("Ship", "Hold", "Reject", "Acknowledge"):
        expect(page.locator("#dac-decide button", has_text=option)).to_have_count(1)
    screenshot(page, "inbox-escalation")

    page.fill("#dac-decide-comment", "release notes checked")
    page.locator("#dac-decide button", has_text="Ship").click()
    expect(page.locator(".messagelist")).to_contain_text("resolved: ship")
    expect(page.locator("#dac-decide")).to_have_count(0)  # decided: no more forms

    assert finished(instance).status == "completed"
    gate.refresh_from_db()
    assert (gate.resolution, gate.decisions.get().comment) == ("ship", "release notes checked")
    page.goto(f"/admin/orchestration/workflowinstance/{instance.id}/change/")
    for step_id in ("build", "ship", "announce"):
        expect(page.locator(f'.dac-dag-node[data-step="{step_id}"]')).to_have_attribute("data-status", "completed")
    expect(page.locator("#dac-inbox-badge")).to_have_text("0")
    screenshot(page, "instance-after-approval")
    assert WorkflowInstance.objects.get(id=instance.id).status == "completed"
    page_errors.assert_none()


def test_someone_outside_the_groups_sees_an_empty_inbox_and_is_refused_on_the_page(live, admin_login, page_errors):
    apply_spec(RELEASE)
    instance = start("browser-release")
    gate = wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, status="pending").first(),
                      message="the gate")
    page = admin_login(groups=["finance"])
    expect(page.locator("#dac-inbox-badge")).to_have_text("0")
    page.click("#dac-inbox-link")
    expect(page.locator("#result_list tbody tr")).to_have_count(0)
    # Even with the address, the page offers no decision (the inbox lists only what one may decide).
    response = page.goto(f"/admin/governance/escalation/{gate.id}/change/")
    assert response.status in (302, 200)
    expect(page.locator("#dac-decide")).to_have_count(0)
    gate.refresh_from_db()
    assert gate.status == "pending"
    page_errors.assert_none()
