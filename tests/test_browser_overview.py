"""The overview in Chromium: at 1280×800 and 390×844 nothing overflows sideways, axe-core finds
nothing serious and the policy blocks nothing; the last hour updates live as a job's calls
finish, to what a reload shows. Screenshots for the closing note go to var/screenshots/."""

import pytest
from playwright.sync_api import expect

from agents.models import Job

from .axe import assert_none_blocking, axe_source, check
from .browser import (
    DESKTOP,
    PHONE,
    REPORT_CSP_VIOLATIONS,
    SHOTS,
    assert_steady,
    log_in,
    mark_page,
    submit_in_form,
)
from .stack import wait_until, wait_until_terminal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

# The LLM calls of the range, summed from the chart's data table (what a screen reader reads).
CALLS = """() => [...document.querySelectorAll(
    'section[aria-labelledby="heading-calls"] table.chart-data td')]
  .reduce((sum, td) => sum + (parseFloat(td.textContent) || 0), 0)"""


@pytest.fixture(scope="module")
def axe():
    return axe_source()


def watched_context(browser, viewport: dict, violations: list[str], **options):
    context = browser.new_context(viewport=viewport, **options)
    context.expose_binding("__cspViolation", lambda _source, line: violations.append(line))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    context.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and violations.append(message.text)
        ),
    )
    return context


def calls_on_reload(browser, url: str) -> float:
    fresh = browser.new_context(viewport=DESKTOP).new_page()
    log_in(fresh, url, "carol")
    fresh.goto(f"{url}/overview/?range=1h")
    value = fresh.evaluate(CALLS)
    fresh.context.close()
    return value


def test_the_overview_updates_live_and_reads_well(stack, seeded, browser, axe, request):
    url = stack.base_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    violations: list[str] = []

    # The last hour, watched by a viewer, live.
    page = watched_context(browser, DESKTOP, violations).new_page()
    log_in(page, url, "carol")
    page.goto(f"{url}/overview/?range=1h")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#connection")).to_have_text("live")
    expect(page.get_by_role("link", name="Last hour")).to_have_attribute("aria-current", "page")
    mark_page(page)
    before = page.evaluate(CALLS)

    # An operator's job runs on the stack: its calls reach the page without a reload.
    board = watched_context(browser, DESKTOP, violations).new_page()
    log_in(board, url, "alice")
    board.goto(f"{url}/")
    job_id = submit_in_form(board, "Overview live", "Count the words of a short text.")
    wait_until_terminal([job_id])
    page.wait_for_function(f"() => ({CALLS})() > {before}", timeout=60_000)
    assert_steady(page)
    # What the live page shows is what a reload shows (once the last fragment arrived).
    wait_until(
        lambda: page.evaluate(CALLS) == calls_on_reload(browser, url),
        "the live overview to match a reload",
        timeout=30,
        poll_s=1,
    )
    job = Job.objects.get(pk=job_id)
    if job.total_cost:
        expect(page.locator(f'#overview-body a[href="/jobs/{job_id}/"]').first).to_be_visible()
    page.screenshot(path=SHOTS / "overview-1280x800.png", full_page=True, caret="initial")

    # Another range: not live, and says so.
    page.get_by_role("link", name="24 h").click()
    expect(page.get_by_text("This range does not update live")).to_be_visible()

    # A phone: nothing wider than the screen.
    phone = watched_context(browser, PHONE, violations, is_mobile=True, has_touch=True).new_page()
    log_in(phone, url, "carol")
    phone.goto(f"{url}/overview/?range=1h")
    expect(phone.locator("#connection")).to_have_text("live")
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the phone's screen"
    phone.screenshot(path=SHOTS / "overview-390x844.png", full_page=True, caret="initial")
    assert violations == [], violations

    # axe-core, the policy bypassed only to inject it: at both sizes, the data tables open.
    found: dict = {}
    for name, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
        audited = browser.new_context(viewport=viewport, bypass_csp=True).new_page()
        log_in(audited, url, "carol")
        audited.goto(f"{url}/overview/?range=1h")
        expect(audited.locator("#connection")).to_have_text("live")
        check(request, audited, f"overview {name}", axe, found)
        audited.locator("main details").evaluate_all("all => all.forEach(d => d.open = true)")
        check(request, audited, f"overview {name}, data tables open", axe, found)
        audited.goto(f"{url}/overview/?range=30d")
        check(request, audited, f"overview {name}, 30 days", axe, found)
    assert_none_blocking(found)
    for shot in ("overview-1280x800.png", "overview-390x844.png"):
        assert (SHOTS / shot).stat().st_size > 10_000, f"{shot} looks empty"
