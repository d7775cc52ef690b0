"""Real Chromium through Playwright, with the Debian build (no browser download here)."""

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


def close_contexts(browser: Browser) -> None:
    """Close every page and context: a page left open keeps its WebSocket and its watchers."""
    for context in list(browser.contexts):
        context.close()


def log_in(page: Page, base_url: str, username: str, password: str | None = None) -> None:
    """Log in through the form; wait for the page that says who is logged in."""
    from .cast import PASSWORD

    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password or PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name=f"Log out {username}")).to_be_visible()


def user_page(browser: Browser, base_url: str, username: str, **context_options) -> Page:
    """A page in a browser context of its own (own cookies), logged in as `username`."""
    options = {"viewport": {"width": 1280, "height": 900}, **context_options}
    page = browser.new_context(**options).new_page()
    log_in(page, base_url, username)
    return page


def mark_page(page: Page) -> None:
    """Set a marker on the window and record the page's WebSocket closes from now on.

    `assert_steady(page)` then checks that the page was neither reloaded nor disconnected.
    """
    page.evaluate(
        """() => {
          window.__batonNotReloaded = true;
          window.__batonDrops = [];
          document.addEventListener('htmx:wsClose',
            e => window.__batonDrops.push(e.detail.event.code));
        }"""
    )


def not_reloaded(page: Page) -> bool:
    return page.evaluate("window.__batonNotReloaded === true")


def assert_steady(page: Page) -> None:
    """Since mark_page: no reload, and the WebSocket never closed (so no catch-up re-fetch)."""
    assert not_reloaded(page), f"{page.url} was reloaded"
    drops = page.evaluate("window.__batonDrops")
    assert drops == [], f"{page.url}: the WebSocket closed (codes {drops}) and reconnected"


_ARTEFACTS: list[str] = []


class _ArtefactSummary:
    @staticmethod
    def pytest_terminal_summary(terminalreporter) -> None:
        if _ARTEFACTS:
            terminalreporter.section("browser test artefacts")
            for line in _ARTEFACTS:
                terminalreporter.write_line(line)


def artefact_dir(request: pytest.FixtureRequest) -> Path:
    """Where screenshots go: $BATON_ARTEFACTS, or test-artifacts/browser (ignored by git)."""
    base = os.environ.get("BATON_ARTEFACTS") or Path(request.config.rootpath) / "test-artifacts"
    directory = Path(base) / "browser"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def announce(request: pytest.FixtureRequest, line: str) -> None:
    """Print `line`, and repeat it in pytest's terminal summary (shown even with -q)."""
    print(line)
    manager = request.config.pluginmanager
    if not manager.has_plugin("baton-artefacts"):
        manager.register(_ArtefactSummary(), "baton-artefacts")
    _ARTEFACTS.append(line)


def screenshot(page: Page, request: pytest.FixtureRequest, name: str) -> Path:
    path = artefact_dir(request) / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    announce(request, f"screenshot: {path}")
    return path


# What the browser tests submit unless they say otherwise.
DESCRIPTION = "Build a tiny URL shortener and review it."


def open_new_job(page) -> None:
    """Open the board's "New job" disclosure (closed until asked for), unless it is open."""
    new_job = page.locator("#new-job")
    if new_job.get_attribute("open") is None:
        new_job.locator("summary").click()
    expect(new_job.get_by_label("Title")).to_be_visible()


def submit_in_form(page, title: str, description: str = DESCRIPTION, review=False) -> int:
    """Submit the board's form (htmx); return the new job's id from the notice's link."""
    open_new_job(page)
    page.get_by_label("Title").fill(title)
    page.get_by_label("Description").fill(description)
    if review:
        page.get_by_label("Review the plan before it runs").check()
    page.get_by_role("button", name="Submit job").click()
    notice = page.locator("#submit .notice", has_text=f"{title} submitted")
    expect(notice).to_be_visible()
    href = notice.get_by_role("link").get_attribute("href")
    return int(re.search(r"/jobs/(\d+)/", href).group(1))


def open_job(page, base_url: str, job_id: int) -> None:
    page.goto(f"{base_url}/jobs/{job_id}/")
    expect(page.locator("#connection")).to_have_text("live")
    mark_page(page)


# The sizes the layout is checked at, and where those checks leave their screenshots.
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
# Every Content Security Policy violation of the context's pages, reported to Python.
REPORT_CSP_VIOLATIONS = """document.addEventListener('securitypolicyviolation', e =>
  window.__cspViolation(`${location.pathname}: ${e.violatedDirective} ${e.blockedURI}`));"""
