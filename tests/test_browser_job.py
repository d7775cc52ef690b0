"""A job watched in Chromium from start to end: board, plan graph, trace, cancel, plan review.

The stack's simulator answers after 1 s, so every step of a job is visible in the page.
Every live check sets a marker on the window first and checks it afterwards: what the page
shows arrived over the WebSocket, not by a reload.
"""

import re
import time

import pytest
from playwright.sync_api import expect

from agents.models import AuditEntry, Job, JobStatus, LLMCall, Subtask, SubtaskStatus

from .browser import (
    assert_steady,
    log_in,
    mark_page,
    open_job,
    screenshot,
    submit_in_form,
    user_page,
)
from .stack import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

LATENCY_MS = 1000
LIVE_TIMEOUT_MS = 60_000

# Records, on every DOM change, the progress of the board's cards whose title contains
# `title`: entries "status value/max", one per change.
RECORD_PROGRESS = """title => {
  window.__progress = [];
  const record = () => {
    for (const card of document.querySelectorAll('article.card')) {
      if (!card.querySelector('h3').textContent.includes(title)) continue;
      const bar = card.querySelector('progress');
      const value = bar.getAttribute('value'), max = bar.getAttribute('max');
      const entry = `${card.dataset.status} ${value}/${max}`;
      if (window.__progress[window.__progress.length - 1] !== entry) window.__progress.push(entry);
    }
  };
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, attributes: true});
  record();
}"""

# Records every status class seen on each node of the plan graph, in order: "id status".
RECORD_NODES = """() => {
  window.__nodes = [];
  const record = () => {
    for (const node of document.querySelectorAll('#plan-graph g.node')) {
      const status = [...node.classList].find(c => c.startsWith('status-'));
      const entry = `${node.id} ${status}`;
      if (!window.__nodes.includes(entry)) window.__nodes.push(entry);
    }
  };
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, attributes: true});
  record();
}"""


def stays_true(predicate, what: str, seconds: float) -> None:
    """Bounded polling for something that must not happen: fails as soon as it does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), what
        time.sleep(0.1)


def test_a_job_is_followed_live_on_the_board_and_the_job_page(slow_stack, seeded, browser):
    url = slow_stack.base_url
    watcher = user_page(browser, url, "bob")  # a second browser context: bob's board
    expect(watcher.locator("#connection")).to_have_text("live")
    mark_page(watcher)
    watcher.evaluate(RECORD_PROGRESS, "Followed job")
    assert watcher.locator("article.card", has_text="Followed job").count() == 0

    alice = user_page(browser, url, "alice")
    job_id = submit_in_form(alice, "Followed job")
    job_page = alice.context.new_page()
    open_job(job_page, url, job_id)
    job_page.evaluate(RECORD_NODES)
    opened_at = job_page.locator("#job-header").get_attribute("data-status")
    assert opened_at != JobStatus.COMPLETED, "the job page must be opened before the job ends"

    # The board: the card appears, its progress advances, it reaches Completed.
    card = watcher.locator(f"#job-card-{job_id}")
    expect(card).to_be_visible(timeout=10_000)
    expect(watcher.locator(f"#cards-completed #job-card-{job_id}")).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    expect(card.locator("progress")).to_have_attribute("value", "3")
    expect(card.locator("progress")).to_have_attribute("max", "3")
    expect(watcher.locator("#count-completed")).to_have_text("1")
    progress = watcher.evaluate("window.__progress")
    print("board progress seen:", progress)
    values = [int(re.search(r" (\d+)/", entry).group(1)) for entry in progress]
    assert values == sorted(values), f"progress went backwards: {progress}"
    assert any(entry.endswith(("1/3", "2/3")) for entry in progress), (
        f"no intermediate progress was shown live: {progress}"
    )
    assert progress[-1] == "completed 3/3"
    assert_steady(watcher)

    # The job page: the graph's nodes changed colour live, and the status reached Completed.
    expect(job_page.locator("#job-status")).to_have_text("Completed", timeout=LIVE_TIMEOUT_MS)
    expect(job_page.locator("#plan-graph g.node.status-completed")).to_have_count(3)
    seen = job_page.evaluate("window.__nodes")
    print("graph node statuses seen:", seen)
    nodes = {entry.split()[0] for entry in seen}
    changed = [
        node
        for node in nodes
        if f"{node} status-completed" in seen
        and any(e.startswith(f"{node} ") and not e.endswith("completed") for e in seen)
    ]
    assert changed, f"no node was seen changing to status-completed: {seen}"
    expect(job_page.locator("#job-result")).to_contain_text("The request was")
    assert_steady(job_page)

    # The trace of one subtask: the messages sent and the tokens of its call.
    research = Subtask.objects.get(job_id=job_id, key="research")
    call = LLMCall.objects.get(subtask=research)
    assert call.prompt_tokens > 0 and call.completion_tokens > 0
    details = job_page.locator(f"#subtask-{research.pk}")
    details.locator("summary").first.click()
    expect(details.locator(f"#call-{call.pk} .tokens")).to_have_text(
        f"{call.prompt_tokens} + {call.completion_tokens} tokens"
    )
    assert_steady(job_page)
    # Its prompts and response are on the subtask's own page, which the job page links to.
    subtask_page = alice.context.new_page()
    subtask_page.goto(f"{url}/subtasks/{research.pk}/")
    trace = subtask_page.locator(f"#call-{call.pk}")
    expect(trace.get_by_role("heading", name="Messages sent")).to_be_visible()
    expect(trace.locator(".message pre").last).to_contain_text(
        f"Your subtask (research): {research.description}"
    )
    expect(trace.locator(".response")).to_contain_text("The request was")
    assert details.get_by_role("link", name="The calls, with their prompts and responses").count()


def test_cancelling_mid_run_shows_on_both_pages_and_starts_nothing_new(slow_stack, seeded, browser):
    url = slow_stack.base_url
    board = user_page(browser, url, "alice")
    expect(board.locator("#connection")).to_have_text("live")
    mark_page(board)

    bob = user_page(browser, url, "bob")
    job_id = submit_in_form(bob, "Cancel me")
    open_job(bob, url, job_id)
    wait_until(
        lambda: Subtask.objects.filter(
            job_id=job_id, key="research", status=SubtaskStatus.WORKING
        ).exists(),
        "the research subtask to start",
    )
    not_started = set(
        Subtask.objects.filter(
            job_id=job_id, status__in=(SubtaskStatus.WAITING, SubtaskStatus.QUEUED)
        ).values_list("key", flat=True)
    )
    assert not_started == {"coding", "review"}

    dialogs = []
    bob.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    bob.get_by_role("button", name="Cancel job").click()
    expect(bob.locator("#job-status")).to_have_text("Cancelled")
    assert dialogs and "Cancel this job?" in dialogs[0]
    expect(board.locator(f"#cards-cancelled #job-card-{job_id}")).to_be_visible(timeout=10_000)
    expect(board.locator(f"#job-card-{job_id} .status")).to_have_text("Cancelled")
    assert_steady(board)

    cancel = AuditEntry.objects.get(job_id=job_id, action="cancel", actor__username="bob")
    research_call = wait_until(
        lambda: LLMCall.objects.filter(subtask__job_id=job_id, subtask__key="research").first(),
        "the research call in flight to finish",
    )
    # The call was in flight when the cancel arrived, so nothing after it had started.
    assert research_call.created_at > cancel.created_at, "research ended before the cancel"
    # Long enough for a worker and the reconciler (every 2 s) to start something wrongly.
    stays_true(
        lambda: (
            not LLMCall.objects.filter(job_id=job_id)
            .exclude(purpose="plan")
            .exclude(subtask__key="research")
            .exists()
        ),
        "a call was made after the cancel",
        seconds=3 + LATENCY_MS / 1000,
    )
    assert not LLMCall.objects.filter(subtask__job_id=job_id, subtask__key__in=not_started)
    statuses = dict(Subtask.objects.filter(job_id=job_id).values_list("key", "status"))
    assert {statuses[key] for key in not_started} == {SubtaskStatus.CANCELLED}
    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLED
    expect(bob.locator("#job-status")).to_have_text("Cancelled")
    expect(board.locator(f"#cards-cancelled #job-card-{job_id}")).to_be_visible()
    assert_steady(board)


def test_a_plan_edited_in_the_browser_is_what_the_specialist_receives(slow_stack, seeded, browser):
    url = slow_stack.base_url
    bob = user_page(browser, url, "bob")
    job_id = submit_in_form(bob, "Reviewed in the browser", review=True)
    wait_until(
        lambda: Job.objects.filter(
            pk=job_id, status=JobStatus.WAITING, planned_at__isnull=False
        ).exists(),
        "the plan to await review",
    )
    open_job(bob, url, job_id)
    expect(bob.locator("#job-status")).to_have_text("Waiting")

    edited = "Compare three URL shorteners; edited in the browser by the operator."
    form = bob.get_by_role("form", name="Edit research")
    form.get_by_label("Description").fill(edited)
    form.get_by_role("button", name="Save research").click()
    expect(bob.get_by_role("form", name="Edit research").get_by_label("Description")).to_have_value(
        edited
    )
    assert Subtask.objects.get(job_id=job_id, key="research").description == edited
    assert not LLMCall.objects.filter(job_id=job_id, purpose="subtask").exists()

    bob.get_by_role("button", name="Approve the plan").click()
    expect(bob.get_by_role("heading", name="Review the plan")).to_have_count(0)
    mark_page(bob)
    expect(bob.locator("#job-status")).to_have_text("Completed", timeout=LIVE_TIMEOUT_MS)
    assert_steady(bob)
    sent = LLMCall.objects.get(subtask__job_id=job_id, subtask__key="research").messages
    assert edited in sent[-1]["content"]
    expect(bob.locator("#subtasks")).to_contain_text(edited)


def test_review_controls_appear_when_the_plan_is_ready(slow_stack, seeded, browser):
    """An operator who opens the job page while it is being planned can review it."""
    url = slow_stack.base_url
    bob = user_page(browser, url, "bob")
    job_id = submit_in_form(bob, "Reviewed once planned", review=True)
    open_job(bob, url, job_id)
    assert bob.locator("#job-header").get_attribute("data-status") != JobStatus.WAITING
    expect(bob.locator("#job-status")).to_have_text("Waiting", timeout=LIVE_TIMEOUT_MS)
    expect(bob.get_by_role("button", name="Approve the plan")).to_be_visible(timeout=10_000)
    expect(bob.get_by_role("form", name="Edit research")).to_be_visible()
    assert_steady(bob)  # shown live, not by a reload or a reconnect's catch-up


# Reports every Content Security Policy violation of every page of the context to Python.
REPORT_CSP_VIOLATIONS = """document.addEventListener('securitypolicyviolation', e =>
  window.__cspViolation(`${location.pathname}: ${e.violatedDirective} ${e.blockedURI}`));"""


def test_the_pages_work_under_the_content_security_policy(slow_stack, seeded, browser):
    """Login, board, a job page (live, with its confirm dialog) and the admin: nothing blocked."""
    url = slow_stack.base_url
    violations: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.expose_binding("__cspViolation", lambda _source, line: violations.append(line))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    context.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and violations.append(message.text)
        ),
    )
    page = context.new_page()
    assert "content-security-policy" in page.goto(f"{url}/login/").headers
    log_in(page, url, "bob")
    expect(page.locator("#connection")).to_have_text("live")  # the WebSocket is allowed
    job_id = submit_in_form(page, "Under the policy", review=True)

    response = page.goto(f"{url}/jobs/{job_id}/")
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    expect(page.locator("#connection")).to_have_text("live")
    expect(page.get_by_role("button", name="Approve the plan")).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    # The confirm is a static script's now: it still asks, and a no keeps the subtask.
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete review").click()
    expect(page.get_by_role("button", name="Delete review")).to_be_visible()
    assert dialogs == ["Delete review?"]
    assert Subtask.objects.filter(job_id=job_id, key="review").exists()
    page.get_by_role("button", name="Approve the plan").click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=LIVE_TIMEOUT_MS)
    page.goto(f"{url}/")
    expect(page.locator(f"#cards-completed #job-card-{job_id}")).to_be_visible()

    admin = context.new_page()
    log_in(admin, url, "alice")
    for path in ("/admin/", "/admin/agents/job/", f"/admin/agents/job/{job_id}/change/"):
        assert admin.goto(f"{url}{path}").status == 200, path
        expect(admin.locator("#content")).to_be_visible()
    admin.wait_for_timeout(500)  # late reports
    assert violations == []


def test_screenshots_of_board_job_page_and_agents(slow_stack, seeded, browser, request):
    url = slow_stack.base_url
    alice = user_page(browser, url, "alice")
    done = submit_in_form(alice, "Write a changelog", "Summarise the last release's changes.")
    submit_in_form(alice, "Plan a migration", "Plan the move to PostgreSQL 17.", review=True)
    wait_until(
        lambda: Job.objects.filter(pk=done, status=JobStatus.COMPLETED).exists(),
        "the first job to complete",
    )
    alice.goto(f"{url}/")
    expect(alice.locator("#connection")).to_have_text("live")
    expect(alice.locator("#cards-completed article")).to_have_count(1)
    expect(alice.locator("#cards-waiting article")).to_have_count(1)
    board = screenshot(alice, request, "board")
    # The columns' counts, as the server renders them, match their cards.
    expect(alice.locator("#count-completed")).to_have_text("1")
    expect(alice.locator("#count-waiting")).to_have_text("1")

    open_job(alice, url, done)
    research = Subtask.objects.get(job_id=done, key="research")
    alice.locator(f"#subtask-{research.pk} > summary").click()
    expect(alice.locator(f"#subtask-{research.pk} .trace")).to_contain_text("tokens")
    job = screenshot(alice, request, "job")

    alice.goto(f"{url}/agents/")
    expect(alice.get_by_role("heading", name="Agents")).to_be_visible()
    expect(alice.get_by_role("heading", name="Register an agent")).to_be_visible()
    agents = screenshot(alice, request, "agents")

    alice.set_viewport_size({"width": 400, "height": 800})
    alice.goto(f"{url}/")
    narrow = screenshot(alice, request, "board-narrow")
    for path in (board, job, agents, narrow):
        assert path.stat().st_size > 10_000, f"{path} looks empty"
