"""The dashboard in a real browser: the overview's charts drawn from the data, the tables and the
links an operator needs, a workflow's page, and an instance's DAG recolouring on its own while real
workers move it (no reload)."""
from decimal import Decimal

from playwright.sync_api import expect

from governance.escalations.models import Escalation
from governance.escalations.services import escalation_decide
from orchestration.dag import status_colours
from orchestration.resources.models import ConcurrencyPool
from tests.metrics import factories as f
from tests.support.browser import screenshot
from tests.support.helpers import apply_spec, finished, start, wait_until

RUNS_BLUE = (0x25, 0x63, 0xEB)
FAILED_RED = (0xB9, 0x1C, 0x1C)

# What a chart was given, and how many of its canvas's pixels carry a colour (its bars or lines).
CHART_STATE = """([id, rgb]) => {
  const chart = window.dacCharts[id];
  const canvas = document.querySelector(`#${id} canvas`);
  if (!chart || !canvas) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const near = Math.abs(pixels[i] - rgb[0]) < 24 && Math.abs(pixels[i + 1] - rgb[1]) < 24
      && Math.abs(pixels[i + 2] - rgb[2]) < 24;
    if (pixels[i + 3] > 0 && near) painted += 1;
  }
  return {columns: chart.columns, painted, width: canvas.width};
}"""


def chart(page, chart_id, rgb):
    page.locator(f"#{chart_id} canvas").first.wait_for()
    return page.evaluate(CHART_STATE, [chart_id, list(rgb)])


def test_the_overview_draws_its_charts_and_links_to_the_inbox_and_flower(admin_login, page_errors, responses,
                                                                           live_url, settings):
    deploy = f.workflow("deploy")
    for minutes in (5, 65, 125):
        f.instance(deploy, ago=minutes * f.MS * 60_000, duration_ms=1500, tokens=(1000, 200), cost="0.42")
    broken = f.instance(deploy, ago=10 * f.MS * 60_000, status="failed", duration_ms=20,
                        error={"type": "Boom", "message": "the disk is full"})
    f.pending(broken, level="approval")
    ConcurrencyPool.objects.create(key="workflow:deploy", limit=3, in_use=2)

    page = admin_login(superuser=True, next_path="/")
    expect(page).to_have_url(f"{live_url}/dashboard/")  # `/` is the operator's home
    expect(page.locator('[data-field="last_24h.runs"]')).to_have_text("4")
    expect(page.locator('[data-field="success_rate"]')).to_have_text("75.0 %")
    expect(page.locator('[data-field="pending_approvals.total"]')).to_have_text("1")

    runs = chart(page, "chart-runs", RUNS_BLUE)
    assert sum(runs["columns"][1]) == 4 and sum(runs["columns"][2]) == 1
    assert runs["painted"] > 50, "the runs' bars are not drawn"
    assert chart(page, "chart-runs", FAILED_RED)["painted"] > 10, "the failure's bar is not drawn"
    success = chart(page, "chart-success", (0x15, 0x80, 0x3D))
    assert success["painted"] > 20
    assert {v for v in success["columns"][1] if v is not None} <= {0, 0.5, 1}
    cost = chart(page, "chart-cost-by-type", (0x7C, 0x3A, 0xED))
    assert cost["columns"][1] == [float(Decimal("0.42") * 3)] and cost["painted"] > 50
    queues = chart(page, "chart-queues", RUNS_BLUE)
    assert queues["columns"][1:] == [[2], [0]] and queues["painted"] > 50

    expect(page.locator("#recent-failures tbody")).to_contain_text("the disk is full")
    expect(page.locator("#pending-approvals tbody a")).to_have_attribute(
        "href", f"/admin/governance/escalation/{Escalation.objects.get().id}/change/")
    expect(page.locator("#nav-flower")).to_have_attribute("href", settings.DAC_FLOWER_URL)
    expect(page.locator("#nav-inbox")).to_have_attribute("href", "/admin/governance/escalation/")
    screenshot(page, "dashboard-overview")

    page.locator("#top-workflows a", has_text="deploy").click()
    expect(page.locator("h1")).to_contain_text("deploy")
    assert sum(chart(page, "chart-runs", RUNS_BLUE)["columns"][1]) == 4
    duration = chart(page, "chart-duration", (0xB4, 0x53, 0x09))
    assert duration["columns"][1][-1] == duration["columns"][2][-1] == 1.5 and duration["painted"] > 0
    page.click("#range-24h")
    expect(page.locator("#range-24h")).to_have_class("dac-range current")
    assert len(chart(page, "chart-runs", RUNS_BLUE)["columns"][0]) == 24
    screenshot(page, "dashboard-workflow")

    assert all(r.url.startswith(live_url) for r in responses), "a page loaded something from outside the project"
    page_errors.assert_none()


RELEASE = {"id": "live-release", "steps": [
    {"id": "build", "action": "echo", "with": {"sha": "4f2a9c1"}},
    {"id": "ship", "action": "echo", "depends_on": ["build"], "approval": {"approvers": ["tech_lead"]}},
    {"id": "announce", "action": "noop", "depends_on": ["ship"]},
]}


def test_an_instance_dag_recolours_while_it_runs_without_a_reload(live, make_staff, admin_login, page_errors):
    apply_spec(RELEASE)
    instance = start("live-release")
    gate = wait_until(lambda: Escalation.objects.filter(instance_id=instance.id, status="pending").first(),
                      message="the approval gate")
    approver = make_staff(superuser=True)
    page = admin_login(approver, next_path=f"/dashboard/instances/{instance.id}/")
    ship = page.locator('#instance-dag .dac-dag-node[data-step="ship"]')
    expect(ship).to_have_attribute("data-status", "waiting_approval")
    expect(ship.locator("rect")).to_have_attribute("fill", status_colours("waiting_approval")[0])
    expect(page.locator('#instance-dag .dac-dag-node[data-step="build"]')).to_have_attribute("data-status",
                                                                                           "completed")
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate("window.dacSamePage = true")  # gone if the page reloads
    screenshot(page, "dashboard-instance-waiting")

    escalation_decide(escalation_id=gate.id, decision="approve", comment="looks good", actor=approver)
    assert finished(instance).status == "completed"

    for step_id in ("build", "ship", "announce"):
        node = page.locator(f'#instance-dag .dac-dag-node[data-step="{step_id}"]')
        expect(node).to_have_attribute("data-status", "completed")
        expect(node.locator("rect")).to_have_attribute("fill", status_colours("completed")[0])
    expect(page.locator("#instance-status")).to_have_text("completed")
    expect(page.locator("#live-state")).to_have_text("finished")
    expect(page.locator("#instance-steps tbody tr")).to_have_count(3)
    assert page.evaluate("window.dacSamePage") is True, "the page reloaded"
    screenshot(page, "dashboard-instance-completed")
    page_errors.assert_none()
