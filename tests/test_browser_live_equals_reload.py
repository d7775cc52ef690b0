"""A job page followed live shows what a reload of it shows, at every ending: completed,
failed, cancelled, after a step's approval and after a plan review. Each job has an operator's
page (bob, who acts on it) and a viewer's (carol) open while it runs; once the job has ended
and the pages are still, each page's regions and elements are compared with a reload's."""

import difflib
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from agents.models import Agent, Job, JobStatus

from .browser import user_page
from .conftest import PASSWORD
from .stack import login, start_stack, submit, wait_until_terminal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

# Long enough that a page is open before its job's first step ends, short for the whole run.
LATENCY_MS = 1000
LIVE_TIMEOUT_MS = 60_000
# The simulator's plan and research step spend about 300 and 150 tokens: coding has none left.
BUDGET = "460"
# A page is still once two looks this far apart find it unchanged (a live window, then the
# operator's re-fetch of 250 ms, fit in it).
STILL_S = 1.0

# What a page shows: each region's text (timestamps blanked), and every element of the
# content by tag, id, classes and, for links, buttons and forms, where they go.
SNAPSHOT = r"""() => {
  const blank = text => text
    .replace(/\b\d{1,2}:\d{2}(:\d{2})?\b/g, 'HH:MM:SS')
    .replace(/\b\d+ (s|min|h) ago\b/g, 'N ago')
    .replace(/\s+/g, ' ').trim();
  const root = document.getElementById('page');
  const skipped = el => el.closest('.messages');
  const regions = {};
  // Each section and each subtask, the sections around subtasks left to them.
  root.querySelectorAll('section, details.subtask').forEach((el, i) => {
    if (skipped(el) || (el.tagName === 'SECTION' && el.querySelector('details.subtask'))) return;
    const name = el.id || el.getAttribute('aria-label')
      || (el.querySelector('h2') || {}).textContent || `section ${i}`;
    regions[name.trim()] = blank(el.textContent);
  });
  const elements = [];
  root.querySelectorAll('*').forEach(el => {
    if (skipped(el)) return;
    const classes = [...el.classList].filter(c => !c.startsWith('htmx-')).sort().join('.');
    let entry = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '');
    if (classes) entry += '.' + classes;
    if (el.tagName === 'A') entry += ` href=${el.getAttribute('href')} "${blank(el.textContent)}"`;
    if (el.tagName === 'BUTTON') entry += ` "${blank(el.textContent)}"`;
    if (el.tagName === 'FORM') entry += ` action=${el.getAttribute('action')}`;
    elements.push(entry);
  });
  return {regions, elements: elements.sort()};
}"""


@pytest.fixture(scope="module")
def endings_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("browser-endings"), latency_ms=LATENCY_MS, exclusive=True
        )
    yield running
    running.stop()


def submitted(client: httpx.Client, title: str, **extra: str) -> int:
    submit(client, title, **extra)
    return Job.objects.get(title=title).pk


def open_live(page: Page, base_url: str, job_id: int) -> Page:
    """The job's page, live, in a new tab of `page`'s browser context."""
    tab = page.context.new_page()
    tab.goto(f"{base_url}/jobs/{job_id}/")
    expect(tab.locator("#connection")).to_have_text("live")
    status = tab.locator("#job-header").get_attribute("data-status")
    assert status not in ("completed", "failed", "cancelled"), "opened after the job ended"
    return tab


def still(pages: list[Page]) -> list[dict]:
    """The pages' snapshots once two looks STILL_S apart agree, for every page."""
    before = [page.evaluate(SNAPSHOT) for page in pages]
    while True:
        time.sleep(STILL_S)
        now = [page.evaluate(SNAPSHOT) for page in pages]
        if now == before:
            return now
        before = now


def differences(live: dict, reloaded: dict) -> list[str]:
    lines = []
    for name in sorted(set(live["regions"]) | set(reloaded["regions"])):
        a, b = live["regions"].get(name), reloaded["regions"].get(name)
        if a != b:
            lines.append(f"region {name!r}:\n  live:   {a}\n  reload: {b}")
    lines += [
        line
        for line in difflib.unified_diff(
            live["elements"], reloaded["elements"], "live", "reload", lineterm="", n=0
        )
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    return lines


def compare_with_reloads(pages: list[tuple[Page, str, str]]) -> list[str]:
    """What each page, still, shows and a reload of it does not, or the other way round."""
    for page, ending, _ in pages:
        expect(page.locator("#job-status")).to_have_text(ending, timeout=LIVE_TIMEOUT_MS)
    found = []
    for (page, ending, who), live in zip(pages, still([p for p, _, _ in pages]), strict=True):
        page.reload()
        expect(page.locator("#connection")).to_have_text("live")
        found += [f"{who}, {ending}: {line}" for line in differences(live, page.evaluate(SNAPSHOT))]
    return found


def test_a_live_page_shows_what_a_reload_shows_at_every_ending(endings_stack, seeded, browser):
    url = endings_stack.base_url
    client = login(url, "bob", PASSWORD)
    bob, carol = user_page(browser, url, "bob"), user_page(browser, url, "carol")
    pages: list[tuple[Page, str, str]] = []

    def watch(job_id: int, ending: str) -> Page:
        operator = open_live(bob, url, job_id)
        pages.append((operator, ending, f"bob on #{job_id}"))
        pages.append((open_live(carol, url, job_id), ending, f"carol on #{job_id}"))
        return operator

    # Four jobs at once: one runs out of budget at its second step (watched first: it ends
    # soonest), one runs through, one is cancelled and one waits for its plan to be approved,
    # each from its page.
    jobs = {"failed": submitted(client, "Out of budget", budget_tokens=BUDGET)}
    watch(jobs["failed"], "Failed")
    jobs["completed"] = submitted(client, "Runs through")
    jobs["cancelled"] = submitted(client, "Cancelled")
    jobs["review"] = submitted(client, "Reviewed", review_plan="on")
    watch(jobs["completed"], "Completed")
    cancelling = watch(jobs["cancelled"], "Cancelled")
    cancelling.once("dialog", lambda dialog: dialog.accept())
    cancelling.get_by_role("button", name="Cancel job").click()
    reviewing = watch(jobs["review"], "Completed")
    reviewing.get_by_role("button", name="Approve the plan").click(timeout=LIVE_TIMEOUT_MS)
    wait_until_terminal(jobs.values())

    # Then a job whose review step waits for an operator (the reviewer marked for it now, so
    # that it stops no other job), approved on its page.
    Agent.objects.filter(slug="reviewer").update(needs_approval=True)
    jobs["approval"] = submitted(client, "Approved step")
    approving = watch(jobs["approval"], "Completed")
    approving.get_by_role("button", name="Approve review", exact=True).click(
        timeout=LIVE_TIMEOUT_MS
    )
    ended = {job.pk: job.status for job in wait_until_terminal(jobs.values())}
    assert [ended[pk] for pk in jobs.values()] == [
        JobStatus.FAILED,
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
    ]

    found = compare_with_reloads(pages)
    assert not found, "\n".join(found)
    # What a reload shows, and so the live pages too: the operator's step links and activity.
    operator = pages[-2][0]
    expect(operator.get_by_text("Re-run from a step")).to_be_visible()
    expect(operator.locator(".audit")).to_contain_text("approval.approve")
