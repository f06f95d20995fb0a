"""The instance page in a real browser at 1400x900 with the admin sidebar open (issue 10, points 3-4):
the 7-step `software-development` example's DAG fits its container without horizontal scroll,
labels whole; a click on a step shows its details below the graph; an unfinished duration keeps
counting; History lists the audit log's entries."""
import re
from pathlib import Path

from playwright.sync_api import expect

from governance.escalations.services import step_decide
from orchestration import engine
from orchestration.dag import MIN_SCALE, status_colours
from registry import services as registry
from tests.support.browser import screenshot
from tests.support.helpers import apply_spec, finished, start, step, step_reaches

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "software-company.yaml"
SEVEN_STEPS = ("plan", "code", "open_pr", "review", "request_changes", "merge", "deploy_dev")
RUN_TIMEOUT = 90
LAPTOP = {"width": 1400, "height": 900}


def apply_example():
    registry.definitions_apply(compiled=registry.compile_path(EXAMPLE), actor="test")


def open_with_sidebar(page, path):
    page.set_viewport_size(LAPTOP)
    page.goto(path)
    expect(page.locator("#nav-sidebar")).to_be_visible()
    expect(page.locator("#main")).to_have_class(re.compile(r"\bshifted\b"))  # the sidebar is open


def test_the_seven_step_dag_fits_1400_px_with_the_sidebar_open_and_a_click_shows_a_step(live, admin_page,
                                                                                         page_errors):
    apply_example()
    instance = start("software-development", {"feature": "user login", "parts": 3})
    step_reaches(instance, "merge", "waiting_approval", timeout=RUN_TIMEOUT)  # code's 3 items are done
    page = admin_page
    open_with_sidebar(page, f"/admin/orchestration/workflowinstance/{instance.id}/change/")

    wrapper, svg = page.locator("#dac-dag"), page.locator("#dac-dag svg")
    expect(svg.locator(".dac-dag-node")).to_have_count(7)
    svg_box, wrapper_box = svg.bounding_box(), wrapper.bounding_box()
    assert svg_box["width"] <= wrapper_box["width"] + 0.5, (svg_box, wrapper_box)
    assert svg_box["x"] >= wrapper_box["x"] - 0.5
    sizes = wrapper.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert sizes[0] <= sizes[1], f"the DAG's wrapper scrolls horizontally: {sizes}"
    page_sizes = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert page_sizes[0] <= page_sizes[1], f"the page scrolls horizontally: {page_sizes}"
    # readable: drawn at no less than MIN_SCALE of its natural size
    natural = float(svg.get_attribute("viewBox").split()[2])
    assert svg_box["width"] >= natural * MIN_SCALE - 1

    for step_id in SEVEN_STEPS:
        node = svg.locator(f'.dac-dag-node[data-step="{step_id}"]')
        expect(node.locator("text.dac-dag-label")).to_have_text(step_id)  # whole, not cut
        assert step_id in node.locator("title").text_content()  # the tooltip shown on hover
        label = node.locator("text.dac-dag-label").bounding_box()
        box = node.locator("rect").first.bounding_box()
        assert label["x"] + label["width"] <= box["x"] + box["width"], step_id  # the text stays in its box
    code = svg.locator('.dac-dag-node[data-step="code"]')
    expect(code).to_have_attribute("data-progress", "3/3")
    expect(code.locator("text.dac-dag-status")).to_have_text("completed · 3/3")

    details = page.locator("#dac-dag-details")
    expect(details).to_be_hidden()
    code.click()
    expect(details).to_be_visible()
    expect(details.locator("h3")).to_contain_text("Step code")
    for text in ("status", "completed", "items", "3/3 done", "attempts", "started", "finished", "duration"):
        expect(details).to_contain_text(text)
    expect(details.locator("a")).to_have_attribute("href", re.compile(r"/admin/orchestration/steprun/\d+/change/"))
    expect(code).to_have_class(re.compile(r"\bdac-dag-selected\b"))

    merge = svg.locator('.dac-dag-node[data-step="merge"]')
    merge.click()
    expect(details.locator("h3")).to_contain_text("Step merge")
    expect(details).to_contain_text("waiting approval")
    screenshot(page, "instance-dag")
    screenshot(page, "instance-dag-top", full_page=False)  # what the first screen shows (the README's tour)
    # the instance is unfinished: its duration is the time so far, and it keeps counting
    duration = page.locator(".field-duration [data-dac-elapsed]")
    expect(duration).to_have_count(1)
    expect(duration).not_to_have_text(duration.text_content())

    # keyboard: Enter on a focused step shows it too; the close button hides the box
    svg.locator('.dac-dag-node[data-step="plan"]').focus()
    page.keyboard.press("Enter")
    expect(details.locator("h3")).to_contain_text("Step plan")
    details.locator(".dac-dag-details-close").click()
    expect(details).to_be_hidden()

    # the step-run rows: no "<id>/<step> View" line above them, times with seconds
    rows = page.locator("#step_runs-group tbody tr")
    expect(rows).to_have_count(7)
    expect(page.locator("#step_runs-group")).not_to_contain_text(f"{instance.id}/")
    expect(page.locator("#step_runs-group td.field-started time").first).to_have_text(
        re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"))
    expect(page.locator(".field-failing_state")).to_contain_text("no")

    page.locator("#content a.historylink").click()
    entries = page.locator("tr.dac-history-entry")
    expect(entries.first).to_be_visible()
    expect(page.locator("#change-history")).to_contain_text("instance.start")
    expect(page.locator("#change-history")).to_contain_text("escalation.create")
    screenshot(page, "instance-history")

    assert step(instance, "merge").status == "waiting_approval"
    engine.instance_terminate(instance_id=instance.id, actor="test")  # leave nothing parked
    page_errors.assert_none()


GATED = {"id": "console-live", "steps": [
    {"id": "build", "action": "echo", "with": {"sha": "4f2a9c1"}},
    {"id": "ship", "action": "echo", "depends_on": ["build"], "approval": {"approvers": ["tech_lead"]}},
    {"id": "announce", "action": "noop", "depends_on": ["ship"]},
]}


def test_the_page_redraws_the_dag_as_the_instance_moves_without_a_reload(live, make_staff, admin_login,
                                                                         page_errors):
    apply_spec(GATED)
    instance = start("console-live")
    step_reaches(instance, "ship", "waiting_approval", timeout=RUN_TIMEOUT)
    approver = make_staff(superuser=True)
    page = admin_login(approver, next_path=f"/admin/orchestration/workflowinstance/{instance.id}/change/")
    ship = page.locator('#dac-dag .dac-dag-node[data-step="ship"]')
    expect(ship).to_have_attribute("data-status", "waiting_approval")
    expect(page.locator("#dac-dag-moved")).to_be_hidden()
    page.evaluate("window.dacSamePage = true")  # gone if the page reloads

    step_decide(instance_id=instance.id, step_id="ship", decision="approve", actor=approver)
    assert finished(instance).status == "completed"
    for step_id in ("build", "ship", "announce"):
        node = page.locator(f'#dac-dag .dac-dag-node[data-step="{step_id}"]')
        expect(node).to_have_attribute("data-status", "completed")
        expect(node.locator("rect").first).to_have_attribute("fill", status_colours("completed")[0])
    expect(page.locator("#dac-dag-moved")).to_contain_text("now completed")
    assert page.evaluate("window.dacSamePage") is True, "the page reloaded"
    page.locator('#dac-dag .dac-dag-node[data-step="announce"]').click()  # details still work on the new drawing
    expect(page.locator("#dac-dag-details")).to_contain_text("completed")
    screenshot(page, "instance-dag-live-completed")
    page_errors.assert_none()
