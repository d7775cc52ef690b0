"""A job page followed live shows what a reload of it shows, at every ending: completed,
failed, cancelled, after a step's approval and after a plan review. Each job has an operator's
page (bob, who acts on it) and a viewer's (carol) open while it runs; once the job has ended
and the pages are still, each page's regions and elements are compared with a reload's."""

import difflib
import time

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Page, expect

from agents.models import Agent, Job, JobStatus

from .stack import start_stack, submit, wait_until_terminal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

# Long enough that a page is open before its job's first step ends, short for the whole run.
LATENCY_MS = 700
LIVE_TIMEOUT_MS = 60_000
# The simulator's plan, research and coding spend about 300, 150 and 230 tokens: the review
# step's prompt (about 155) does not fit in what is left once it is approved.
BUDGET = "750"
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


# The job's status as the server rendered the page, before any live update.
RENDERED_STATUS = """document.addEventListener('DOMContentLoaded', () => {
  const header = document.getElementById('job-header');
  window.__renderedStatus = header ? header.dataset.status : null;
});"""


@pytest.fixture(scope="module")
def endings_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("browser-endings"), latency_ms=LATENCY_MS, exclusive=True
        )
    yield running
    running.stop()


def session_page(browser, base_url: str, user: User) -> Page:
    """A page in a browser context of its own, logged in by a session made here: the login
    form's password hashing costs about a second a user on a busy machine."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RENDERED_STATUS)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url}])
    return context.new_page()


def submitter(page: Page, base_url: str) -> httpx.Client:
    """An HTTP client with the session and CSRF cookies of `page`'s browser context."""
    page.goto(f"{base_url}/")
    cookies = httpx.Cookies()
    for cookie in page.context.cookies():
        cookies.set(cookie["name"], cookie["value"], domain=cookie["domain"], path=cookie["path"])
    return httpx.Client(base_url=base_url, cookies=cookies, follow_redirects=True, timeout=10)


def submitted(client: httpx.Client, title: str, **extra: str) -> int:
    submit(client, title, **extra)
    return Job.objects.get(title=title).pk


def open_live(tabs: list[tuple[Page, int]], base_url: str) -> list[Page]:
    """Each job's page in a new tab of the page's browser context, all loading at once; live,
    and opened before the job ended."""
    opened = []
    for page, job_id in tabs:
        tab = page.context.new_page()
        tab.goto(f"{base_url}/jobs/{job_id}/", wait_until="commit")
        opened.append(tab)
    for tab in opened:
        expect(tab.locator("#connection")).to_have_text("live")
        status = tab.evaluate("window.__renderedStatus")
        assert status not in ("completed", "failed", "cancelled"), f"{tab.url} rendered {status}"
    return opened


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
    bob = session_page(browser, url, seeded["bob"])
    carol = session_page(browser, url, seeded["carol"])
    client = submitter(bob, url)
    pages: list[tuple[Page, str, str]] = []

    def watch(*watched: tuple[int, str]) -> list[Page]:
        """Open each job's page for bob and for carol; bob's pages, in the same order."""
        tabs = open_live([(user, job_id) for job_id, _ in watched for user in (bob, carol)], url)
        for (job_id, ending), operator, viewer in zip(watched, tabs[::2], tabs[1::2], strict=True):
            pages.extend(
                [(operator, ending, f"bob on #{job_id}"), (viewer, ending, f"carol on #{job_id}")]
            )
        return tabs[::2]

    # Two jobs at once: one runs through, one waits for its plan to be approved on its page.
    jobs = {
        "completed": submitted(client, "Runs through"),
        "review": submitted(client, "Reviewed", review_plan="on"),
    }
    _, reviewing = watch((jobs["completed"], "Completed"), (jobs["review"], "Completed"))
    reviewing.get_by_role("button", name="Approve the plan").click(timeout=LIVE_TIMEOUT_MS)
    wait_until_terminal(jobs.values())

    # Then three whose review step waits for an operator (the reviewer marked now, so that it
    # stops neither job above), each decided on its page while it waits: one approved, one
    # cancelled, one approved out of budget (its plan, research and coding fit in it).
    Agent.objects.filter(slug="reviewer").update(needs_approval=True)
    jobs["approval"] = submitted(client, "Approved step")
    jobs["cancelled"] = submitted(client, "Cancelled")
    jobs["failed"] = submitted(client, "Out of budget", budget_tokens=BUDGET)
    waiting = watch(
        (jobs["approval"], "Completed"),
        (jobs["cancelled"], "Cancelled"),
        (jobs["failed"], "Failed"),
    )
    approve = {"name": "Approve review", "exact": True}
    for page in waiting:
        expect(page.get_by_role("button", **approve)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    approving, cancelling, failing = waiting
    approving.get_by_role("button", **approve).click()
    failing.get_by_role("button", **approve).click()
    cancelling.once("dialog", lambda dialog: dialog.accept())
    cancelling.get_by_role("button", name="Cancel job").click()
    ended = {job.pk: job.status for job in wait_until_terminal(jobs.values())}
    assert [ended[pk] for pk in jobs.values()] == [
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.FAILED,
    ]

    found = compare_with_reloads(pages)
    assert not found, "\n".join(found)
    # What a reload shows, and so the live pages too: the operator's step links and activity.
    operator = pages[4][0]  # bob on the approved step's job
    expect(operator.get_by_text("Re-run from a step")).to_be_visible()
    expect(operator.locator(".audit")).to_contain_text("approval.approve")
