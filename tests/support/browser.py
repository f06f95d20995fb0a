"""Real-browser helpers: Debian's chromium driven by Playwright (sync API).

There is no browser download on these machines (never `playwright install`): Playwright launches the
OS package's /usr/bin/chromium, which `make test` installs with apt-get when it is missing
(scripts/bootstrap.sh --browser). The fixtures that use these live in tests/browser/conftest.py.
"""
import contextlib
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOT_DIR = ROOT / ".run" / "screenshots"

CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless itself. The rest keeps an offline machine's chromium from phoning home
# (and from waiting on it): no QUIC, first-run UI, background fetches, component updates or sync.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright):
    """Launch Debian's chromium. Fails (never skips) when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's chromium package. `make test` "
                    f"installs it (scripts/bootstrap.sh --browser); by hand: apt-get install -y chromium "
                    f"(as root). Never `playwright install`: these machines have no browser download.",
                    pytrace=False)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@contextlib.contextmanager
def async_unsafe_allowed():
    """Let the Django ORM run in a thread where an asyncio loop is running, then restore the variable.

    Playwright's sync API runs its asyncio event loop in a greenlet of the calling (test) thread, and
    from `sync_playwright().start()` until `.stop()` that loop counts as the thread's *running* loop.
    Django refuses ORM calls there (SynchronousOnlyOperation) unless DJANGO_ALLOW_ASYNC_UNSAFE is
    set. Nothing is concurrent here (the loop only runs while a Playwright call blocks the test), so
    it is safe, but only for as long as Playwright is alive: other tests keep Django's check.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def screenshot(page, name, *, full_page=True):
    """Save `.run/screenshots/<name>.png` (the directory is created; .run/ is not committed)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_.') or 'page'}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def pump(page):
    """Have Playwright deliver the events `page` has sent so far (console, pageerror, response...).

    The sync API handles events only inside a Playwright call: while the test sleeps or polls plain
    Python (wait_until), handlers do not run. A round trip to the page takes in everything the page
    emitted before it. Polling on events: wait_until(lambda: pump(page) and errors, ...).
    """
    if not page.is_closed():
        page.evaluate("0")
    return True


class PageErrors(list):
    """Console errors and uncaught exceptions of the pages it is attached to; `assert_none()` at the end
    of a test (it takes in the events not yet delivered first, see `pump`)."""

    def __init__(self):
        super().__init__()
        self.pages = []

    def attach(self, page):
        self.pages.append(page)
        page.on("console", lambda msg: self._console(page, msg))
        page.on("pageerror", lambda exc: self.append(f"pageerror at {page.url}: {exc}"))
        return page

    def _console(self, page, msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url") or page.url
        if url.split("?", 1)[0].endswith("/favicon.ico"):
            return  # chromium asks every site for /favicon.ico by itself; Django has none: not a page error
        self.append(f"console.error at {url}: {msg.text}")

    def collect(self):
        for page in self.pages:
            pump(page)
        return self

    def assert_none(self):
        self.collect()
        assert not self, "errors in the browser:\n" + "\n".join(self)


class Responses(list):
    """Every response a page received, to check what a page loaded (static files, XHR)."""

    def attach(self, page):
        page.on("response", lambda response: self.append(response))  # (Playwright wants a Python function)
        return page

    def find(self, path_suffix):
        return [r for r in self if r.url.split("?", 1)[0].endswith(path_suffix)]


def admin_login(page, username, password, *, next_path="/admin/"):
    """Log in through the admin's real login form (typing into it), landing on `next_path`."""
    page.goto(f"/admin/login/?next={quote(next_path)}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form [type=submit]")
    page.wait_for_load_state()
    if page.locator(".errornote").count():
        raise AssertionError(f"admin login as {username!r} failed: {page.locator('.errornote').inner_text()}")
    # The header of a logged-in admin page, or the dashboard's own (`/` and /dashboard/ pages).
    page.locator("#user-tools, .dac-nav-user").first.wait_for()
    return page
