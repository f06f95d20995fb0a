"""The admin in a real browser: logging in, static files, pages whose JavaScript runs cleanly."""
import re

from playwright.sync_api import expect

from tests.support.browser import screenshot

INSTANCES = "/admin/orchestration/workflowinstance/"


def test_superuser_logs_in_and_sees_a_styled_admin_index(admin_page, responses, page_errors):
    page = admin_page
    assert page.url.endswith("/admin/")
    expect(page).to_have_title("Site administration | DAC console")
    expect(page.locator("#site-name > a").first).to_have_text("DAC console")
    expect(page.locator("h1")).to_have_text("Site administration")
    expect(page.locator("#user-tools")).to_contain_text("admin")

    # Static files come through the live server (staticfiles' finders), and the stylesheet applies.
    css = responses.find("/static/admin/css/base.css")
    assert css and all(r.status == 200 for r in css), [(r.url, r.status) for r in css]
    assert "text/css" in css[-1].header_value("content-type")
    header = page.locator("#header")
    expect(header).to_have_css("display", "flex")
    assert header.evaluate("el => getComputedStyle(el).backgroundColor") not in ("", "rgba(0, 0, 0, 0)")

    assert screenshot(page, "admin-index").stat().st_size > 0
    page_errors.assert_none()


def test_instance_list_runs_its_javascript_without_errors(admin_login, responses, page_errors):
    page = admin_login(permissions=["orchestration.view_workflowinstance"])
    responses.clear()
    page.goto(INSTANCES)
    expect(page.locator("h1")).to_have_text(re.compile("workflow instance", re.I))
    expect(page.locator("#result_list tbody tr")).to_have_count(0)
    expect(page.locator("#changelist .paginator")).to_contain_text("0 workflow instances")

    for script in ("/static/admin/js/theme.js", "/static/admin/js/nav_sidebar.js"):
        assert [r.status for r in responses.find(script)] == [200], script
    # theme.js ran: it set <html data-theme="auto"> on load (fresh context, nothing stored), and
    # its colour-theme button switches the theme on a click.
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "auto")
    page.locator("#user-tools .theme-toggle").click()
    expect(html).to_have_attribute("data-theme", re.compile("^(light|dark)$"))

    screenshot(page, "admin-instance-list-empty")
    page_errors.assert_none()
