"""The instance list and the Run form in a real browser at 1400x900 with the admin sidebar open
(issue 10, point 5): short ids that do not wrap, times and durations not clipped, no horizontal
scroll; a definition's Run button opens a form that starts an instance, and bad input shows the
error at its field and starts nothing."""
import re
from pathlib import Path

from playwright.sync_api import expect

from orchestration import engine
from orchestration.models import WorkflowInstance
from registry import services as registry
from registry.models import WorkflowDefinition
from tests.support.browser import screenshot
from tests.support.helpers import finished, start, step_reaches, wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "software-company.yaml"
LAPTOP = {"width": 1400, "height": 900}
INSTANCES = "/admin/orchestration/workflowinstance/"
RUN_TIMEOUT = 90


def open_with_sidebar(page, path):
    page.set_viewport_size(LAPTOP)
    page.goto(path)
    expect(page.locator("#nav-sidebar")).to_be_visible()
    expect(page.locator("#main")).to_have_class(re.compile(r"\bshifted\b"))


def test_the_instance_list_fits_1400_px_with_the_sidebar_open(live, admin_page, page_errors):
    registry.definitions_apply(compiled=registry.compile_path(EXAMPLE), actor="test")
    done = [start("incident-response", {"severity": "low"}) for _ in range(2)]
    for instance in done:
        finished(instance, timeout=RUN_TIMEOUT)
    parked = start("software-development", {"feature": "user login", "parts": 2})
    step_reaches(parked, "merge", "waiting_approval", timeout=RUN_TIMEOUT)
    page = admin_page
    open_with_sidebar(page, INSTANCES)

    rows = page.locator("#result_list tbody tr")  # with what software-development's events started
    for instance in (*done, parked):
        expect(rows.locator(f'code[title="{instance.id}"]')).to_have_count(1)
    results = page.locator("#changelist-form .results")
    sizes = results.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert sizes[0] <= sizes[1], f"the instance list scrolls horizontally: {sizes}"
    page_sizes = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert page_sizes[0] <= page_sizes[1], f"the page scrolls horizontally: {page_sizes}"
    # every row is one line high: nothing wraps (the ids used to take four lines)
    heights = rows.evaluate_all("rows => rows.map(r => r.getBoundingClientRect().height)")
    line = page.locator("#result_list tbody td.field-short_id").first.evaluate(
        "td => { const s = getComputedStyle(td); return parseFloat(s.lineHeight) + parseFloat(s.paddingTop) "
        "+ parseFloat(s.paddingBottom) + 2; }")
    assert max(heights) <= line * 1.3, (heights, line)
    # and no cell is clipped
    clipped = page.locator("#result_list td, #result_list th").evaluate_all(
        "cells => cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.className + ': ' + c.innerText)")
    assert not clipped, clipped

    # (uuid7 ids begin with their creation time: ids made in the same minute share their first 8 characters)
    short_id = rows.locator(f'td.field-short_id code[title="{parked.id}"]')
    expect(short_id).to_have_text(f"{str(parked.id)[:8]}\u2026{str(parked.id)[-4:]}")
    row = rows.filter(has=page.locator(f'code[title="{parked.id}"]'))
    duration = row.locator("td.field-duration [data-dac-elapsed]")  # still running: the time so far
    expect(duration).to_have_count(1)
    expect(duration).not_to_have_text(duration.text_content())  # and it counts
    expect(row.locator("td.field-created_column time")).to_have_text(re.compile(r"^\d{2}:\d{2}:\d{2}$"))
    expect(row.locator("td.field-workflow_and_version")).to_have_text("software-development v1")
    screenshot(page, "instance-list")

    short_id.click()
    expect(page).to_have_url(re.compile(rf"/workflowinstance/{parked.id}/change/$"))
    engine.instance_terminate(instance_id=parked.id, actor="test")
    page_errors.assert_none()


def test_the_run_form_starts_an_instance_and_bad_input_shows_the_field_error(live, admin_page, page_errors):
    registry.definitions_apply(compiled=registry.compile_path(EXAMPLE), actor="test")
    definition = WorkflowDefinition.objects.get(key="software-development")
    page = admin_page
    open_with_sidebar(page, f"/admin/registry/workflowdefinition/{definition.pk}/change/")
    expect(page.locator(".dac-dag-wrapper svg .dac-dag-node")).to_have_count(7)  # the definition's drawing
    page_sizes = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert page_sizes[0] <= page_sizes[1], f"the definition page scrolls horizontally: {page_sizes}"
    screenshot(page, "definition-page")
    page.locator("a.dac-run-button").click()
    expect(page.locator("h1")).to_have_text("Run software-development")
    form = page.locator("#dac-run-form")
    parts, feature = form.get_by_label("parts"), form.get_by_label("feature")
    expect(parts).to_have_attribute("placeholder", "3")
    expect(feature).to_have_attribute("placeholder", "user login")

    feature.fill("search")
    parts.fill("many")
    form.locator("#dac-run-submit").click()
    parts_row = form.locator(".form-row", has=page.locator('label[for="id_context.parts"]'))
    expect(parts_row.locator(".errorlist")).to_contain_text("must be a number, like the workflow's default 3")
    expect(page.locator(".errornote")).to_contain_text("nothing was started")
    expect(form.get_by_label("feature")).to_have_value("search")  # what was typed is kept
    assert not WorkflowInstance.objects.filter(definition=definition).exists()
    screenshot(page, "run-form")

    form.get_by_label("parts").fill("2")
    form.get_by_label("more context").fill('{"requested_by": "browser test"}')
    form.get_by_label("priority").select_option("high")
    form.locator("#dac-run-submit").click()
    expect(page.locator(".messagelist")).to_contain_text("Started software-development: instance")
    expect(page).to_have_url(re.compile(r"/admin/orchestration/workflowinstance/[0-9a-f-]{36}/change/$"))
    instance = wait_until(lambda: WorkflowInstance.objects.filter(definition=definition).first(),
                          message="the started instance")
    assert instance.context == {"feature": "search", "parts": 2, "requested_by": "browser test"}
    assert instance.priority == 7 and instance.created_by.username == "admin"
    expect(page.locator(".dac-dag-node")).to_have_count(7)
    step_reaches(instance, "plan", "completed", timeout=RUN_TIMEOUT)  # real workers run it
    screenshot(page, "run-form-started")
    engine.instance_terminate(instance_id=instance.id, actor="test")
    page_errors.assert_none()
