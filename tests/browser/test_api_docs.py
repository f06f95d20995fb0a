"""`/api/docs/` on a machine without internet: Swagger UI comes from the project's static files
(drf-spectacular-sidecar) and draws the API's operations."""
from playwright.sync_api import expect

from tests.support.browser import screenshot


def test_swagger_ui_draws_the_api_from_the_projects_own_files(page, page_errors, responses, live_url, db):
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("DAC API")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/workflows/{id}/run/")).to_have_count(1)
    loaded = [r.url for r in responses]
    assert any("swagger-ui-bundle" in url for url in loaded)
    assert all(url.startswith(live_url) for url in loaded), [u for u in loaded if not u.startswith(live_url)]
    screenshot(page, "api-docs")
    page_errors.assert_none()
