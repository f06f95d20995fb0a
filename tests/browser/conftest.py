"""Browser tests: Django pages in a real chromium (Debian's /usr/bin/chromium, Playwright's sync API)
against pytest-django's `live_server` (a real threaded server on a port, using the test database,
serving static files through django.contrib.staticfiles' finders: no collectstatic needed).

Fixtures: `browser` (one chromium for this directory), `live_url`, `page` (a fresh context per
test, base_url = live_url, so `page.goto("/admin/")`), `new_page` (more pages, e.g. one per user),
`page_errors` (console errors + uncaught exceptions of every page of the test; end a test with
`page_errors.assert_none()`), `responses`, `make_staff`, `admin_login` and `admin_page` (logged in
through the real login form). Wait with Playwright's own waits (`expect(...)`, `locator.wait_for`);
Playwright delivers page events only inside its calls, so a wait_until predicate on events must
call `support.pump(page)` (see tests/support/browser.py). No sleeps.
A failing test leaves a screenshot of each of its pages in .run/screenshots/failed-<test>-<n>.png.

Data the server should see must be committed: `live_server` makes the test transactional
(`transactional_db`), so rows made in the test are visible to the server thread, and the database
is emptied after each test.
"""
import secrets

import pytest
from django.contrib.auth.models import Group, Permission, User
from playwright.sync_api import sync_playwright

from tests.support import browser as support

# DJANGO_ALLOW_ASYNC_UNSAFE is NOT set here at import time: conftest modules are imported while
# collecting, so the variable would hold for the whole run (every other test and the Celery worker
# processes started by tests/conftest.py, which copy os.environ). Instead the `browser` fixture
# sets it for exactly as long as Playwright is alive; see support.async_unsafe_allowed for why it
# is needed at all (Playwright's asyncio loop "runs" in the test thread; the ORM would refuse).


@pytest.fixture(scope="package")
def browser():
    """One chromium for the browser tests. Package scope, not session: Playwright's event loop stays
    the thread's running loop until it stops, so it is stopped (and the async-unsafe allowance is
    withdrawn) as soon as the last test of this directory is done, before tests elsewhere run."""
    with support.async_unsafe_allowed():
        with sync_playwright() as playwright:
            chromium = support.launch_chromium(playwright)
            yield chromium
            chromium.close()


@pytest.fixture
def live_url(live_server):
    """The live server's base URL, e.g. http://localhost:40123 (no trailing slash)."""
    return live_server.url


@pytest.fixture
def page_errors():
    return support.PageErrors()


@pytest.fixture
def responses():
    return support.Responses()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.dac_call_failed = report.failed
    return report


@pytest.fixture
def new_page(request, browser, live_url, page_errors, responses):
    """Factory: a page in a fresh browser context (own cookies), base_url = live_url."""
    contexts, pages = [], []

    def make(**context_options):
        context = browser.new_context(base_url=live_url, viewport={"width": 1280, "height": 900}, **context_options)
        context.set_default_timeout(10_000)  # fail in seconds, not Playwright's default 30 s
        contexts.append(context)
        page = context.new_page()
        page_errors.attach(page)
        responses.attach(page)
        pages.append(page)
        return page

    yield make
    if getattr(request.node, "dac_call_failed", False):
        for number, page in enumerate(pages, 1):
            try:
                path = support.screenshot(page, f"failed-{request.node.name}-{number}")
                print(f"screenshot of the failed page: {path}")
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"no screenshot of page {number}: {exc}")
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def make_staff(transactional_db, settings):
    """Factory: a staff user with the given permissions ("app_label.codename") and groups (names,
    created when missing). The plain password is on `user.raw_password`."""
    # PBKDF2 costs about a second per hash on a busy CI machine, paid twice per login (creating the
    # user, then the login form's POST). The login still goes through Django's real authentication.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    counter = iter(range(1, 1_000_000))

    def make(username=None, *, permissions=(), groups=(), superuser=False):
        password = secrets.token_urlsafe(16)
        user = User.objects.create_user(username or f"staff{next(counter)}", password=password, is_staff=True,
                                        is_superuser=superuser)
        for name in permissions:
            app_label, codename = name.split(".", 1)
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        user.raw_password = password
        return user

    return make


@pytest.fixture
def admin_login(new_page, make_staff):
    """Factory: log a user into /admin/ through the real login form in a new page; returns the page.

    admin_login(user) for an existing user (with `raw_password`), or admin_login(**make_staff options)
    to make one: admin_login(permissions=["orchestration.view_workflowinstance"], groups=["approvers"]).
    """

    def login(user=None, *, next_path="/admin/", **staff_options):
        user = user or make_staff(**staff_options)
        return support.admin_login(new_page(), user.username, user.raw_password, next_path=next_path)

    return login


@pytest.fixture
def admin_page(admin_login):
    """A page logged into the admin as a staff superuser, on the admin index."""
    return admin_login(username="admin", superuser=True)
