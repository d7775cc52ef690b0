"""An operator logs in, submits a job in the form and watches its card reach Completed."""

import pytest
from playwright.sync_api import expect

from .browser import open_new_job
from .cast import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#new-job > summary")).to_have_text("New job")


def test_a_submitted_job_moves_to_completed_live(stack, seeded, browser, tmp_path):
    page = browser.new_page()
    log_in(page, stack.base_url, "alice")
    expect(page.locator("#connection")).to_have_text("live")
    page.evaluate("window.__notReloaded = true")

    open_new_job(page)
    page.get_by_label("Title").fill("Browser job")
    page.get_by_label("Description").fill("Plan a small data pipeline and review it.")
    page.get_by_label("Priority").select_option("2")
    page.get_by_role("button", name="Submit job").click()

    expect(page.get_by_role("status").filter(has_text="submitted")).to_be_visible()
    card = page.locator("#cards-completed article", has_text="Browser job")
    expect(card).to_be_visible(timeout=30_000)
    expect(card.locator("progress")).to_have_attribute("value", "3")
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator("article", has_text="Browser job").count() == 1
    page.screenshot(path=tmp_path / "board.png", full_page=True)
    print(f"screenshot: {tmp_path / 'board.png'}")


def test_the_form_shows_validation_errors_inline(stack, seeded, browser):
    page = browser.new_page()
    log_in(page, stack.base_url, "alice")
    open_new_job(page)
    page.get_by_label("Title").fill("   ")
    page.get_by_label("Description").fill("short")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#submit .error").first).to_be_visible()
    expect(page.locator("#submit")).to_contain_text("at least 10 characters")
    assert page.locator("#cards-queued article").count() == 0
