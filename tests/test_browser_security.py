"""What a hostile answer, a viewer and a lost server can and cannot do to the pages.

One stack of this module's own (300 ms answers, so a page can watch a job run), because the
reconnect test stops and restarts its web server.
"""

import signal
import time

import httpx
import pytest
from playwright.sync_api import expect

from agents.models import Agent, AuditEntry, Job, JobStatus

from .browser import (
    assert_steady,
    mark_page,
    not_reloaded,
    open_job,
    submit_in_form,
    user_page,
)
from .stack import _spawn, _wait_for, start_stack, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

# The simulator echoes the start of its prompt ("The request was: Job: <title> <description>",
# 160 characters), so this comes back inside every answer, the synthesis included.
PAYLOAD = (
    "<script>window.__pwned=1</script> "
    '<img src=x onerror="window.__pwned=2"> '
    "[click](javascript:window.__pwned=3) "
    '<i hx-get="/" hx-trigger="load">h</i>'
)

# POST as the page's user, the way a form or htmx would: CSRF token in the body and header.
POST = """async ([url, htmx]) => {
  const token = document.querySelector('[name=csrfmiddlewaretoken]').value;
  const headers = {'X-CSRFToken': token};
  if (htmx) headers['HX-Request'] = 'true';
  const body = new FormData();
  body.append('csrfmiddlewaretoken', token);
  const response = await fetch(url, {method: 'POST', headers, body});
  return response.status;
}"""

# Open a WebSocket from the page; resolve once it is open or closed.
OPEN_SOCKET = """path => new Promise(resolve => {
  const ws = new WebSocket(`ws://${location.host}${path}`);
  ws.onopen = () => { window.__socket = ws; resolve({opened: true}); };
  ws.onclose = event => resolve({opened: false, code: event.code});
})"""


@pytest.fixture(scope="module")
def own_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("browser-security"), latency_ms=300, exclusive=True
        )
    yield running
    running.stop()


def record_dialogs(page, dialogs: list) -> None:
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))


def assert_inert(page, dialogs: list) -> None:
    page.locator("main details").evaluate_all("all => all.forEach(d => d.open = true)")
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert page.evaluate("typeof window.__pwned") == "undefined"
    rendered = page.locator("#job-result, #subtasks .markdown")
    assert rendered.count() == 4  # the synthesis and the three subtasks' results
    for i in range(rendered.count()):
        expect(rendered.nth(i)).to_contain_text("<script>window.__pwned=1</script>")
    assert page.locator("main script").count() == 0
    assert page.locator("main img").count() == 0
    assert page.locator("main [onerror]").count() == 0
    assert page.locator(".markdown [hx-get], .markdown [hx-trigger]").count() == 0
    handlers = page.locator(".markdown *, .trace *").evaluate_all(
        "all => all.flatMap(e => [...e.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on') || n.startsWith('hx-'))"
    )
    assert handlers == []
    hrefs = page.locator("main a").evaluate_all(
        "all => all.map(a => (a.getAttribute('href') || '').trim().toLowerCase())"
    )
    assert not [h for h in hrefs if h.startswith("javascript:")], hrefs
    assert page.locator("#job-result a", has_text="click").count() == 1  # kept, without href
    assert page.locator("#job-result a[href]").count() == 0


def test_a_hostile_answer_renders_inert(own_stack, seeded, browser):
    url = own_stack.base_url
    dialogs: list[str] = []
    alice = user_page(browser, url, "alice")
    record_dialogs(alice, dialogs)
    job_id = submit_in_form(alice, "Inert", PAYLOAD)

    # Live: the results arrive as fragments swapped in by htmx.
    job_page = alice.context.new_page()
    record_dialogs(job_page, dialogs)
    open_job(job_page, url, job_id)
    expect(job_page.locator("#job-status")).to_have_text("Completed", timeout=60_000)
    job = Job.objects.get(pk=job_id)
    assert "<script>window.__pwned=1</script>" in job.result  # the answer really has it
    assert 'onerror="window.__pwned=2"' in job.result
    expect(job_page.locator("#subtasks .markdown")).to_have_count(3)
    assert_inert(job_page, dialogs)
    assert_steady(job_page)

    # Rendered by the server on a fresh load.
    job_page.reload()
    assert_inert(job_page, dialogs)
    alice.goto(f"{url}/")
    expect(alice.locator(f"#job-card-{job_id}")).to_be_visible()
    assert alice.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []


def post_status(page, url: str, htmx: bool) -> int:
    return page.evaluate(POST, [url, htmx])


def test_permissions_in_the_browser(own_stack, seeded, browser):
    url = own_stack.base_url
    bob = user_page(browser, url, "bob")
    job_id = submit_in_form(bob, "Awaiting review", review=True)
    job = wait_until(
        lambda: Job.objects.filter(
            pk=job_id, status=JobStatus.WAITING, planned_at__isnull=False
        ).first(),
        "the plan to await review",
    )
    research = job.subtasks.get(key="research")

    # The viewer sees no controls.
    carol = user_page(browser, url, "carol")
    expect(carol.locator("section.board")).to_be_visible()
    assert carol.locator("#submit").count() == 0
    assert carol.get_by_role("button", name="Submit job").count() == 0
    expect(carol.locator(f"#job-card-{job_id}")).to_be_visible()
    open_job(carol, url, job_id)
    expect(carol.locator("#job-status")).to_have_text("Waiting")
    for name in ("Cancel job", "Retry job", "Approve the plan", "Save research", "Add subtask"):
        assert carol.get_by_role("button", name=name).count() == 0, name
    for key in ("research", "coding", "review"):
        expect(carol.get_by_role("button", name=f"Retry {key}")).to_be_hidden()
        assert carol.get_by_role("button", name=f"Delete {key}").count() == 0
    assert carol.locator(".review, .job-actions").count() == 0
    carol.goto(f"{url}/agents/")
    expect(carol.locator("#agent-researcher")).to_be_visible()
    assert carol.get_by_role("heading", name="Register an agent").count() == 0
    assert carol.get_by_role("link", name="Edit Researcher").count() == 0
    assert carol.get_by_role("button", name="Disable Researcher").count() == 0
    assert carol.locator("form[action*='/agents/']").count() == 0

    # ... and is refused every action, as a form post and as htmx would send it.
    refused = [
        "/jobs/submit/",
        f"/jobs/{job_id}/cancel/",
        f"/jobs/{job_id}/retry/",
        f"/jobs/{job_id}/approve/",
        f"/jobs/{job_id}/subtasks/add/",
        f"/subtasks/{research.pk}/edit/",
        f"/subtasks/{research.pk}/delete/",
        f"/subtasks/{research.pk}/retry/",
        "/agents/new/",
        "/agents/researcher/edit/",
        "/agents/researcher/toggle/",
    ]
    for path in refused:
        for htmx in (False, True):
            status = post_status(carol, f"{url}{path}", htmx)
            assert status == 403, f"carol POST {path} (htmx={htmx}): {status}"
    assert carol.goto(f"{url}/agents/researcher/edit/").status == 403

    # Over the WebSocket: a viewer may watch, but what she sends does nothing.
    carol.goto(f"{url}/jobs/{job_id}/")
    assert carol.evaluate(OPEN_SOCKET, f"/ws/jobs/{job_id}/") == {"opened": True}
    carol.evaluate(
        "id => window.__socket.send(JSON.stringify({action: 'approve', job: id,"
        " HEADERS: {'HX-Request': 'true'}}))",
        job_id,
    )
    # Nobody may watch without logging in.
    anonymous = browser.new_page()
    anonymous.goto(f"{url}/login/")
    assert anonymous.evaluate(OPEN_SOCKET, "/ws/board/")["opened"] is False
    assert anonymous.evaluate(OPEN_SOCKET, f"/ws/jobs/{job_id}/")["opened"] is False

    # Nothing changed.
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    assert set(job.subtasks.values_list("key", flat=True)) == {"research", "coding", "review"}
    assert Agent.objects.get(slug="researcher").enabled
    assert not AuditEntry.objects.filter(actor__username="carol").exists()

    # The operator cannot edit or toggle agents.
    bob.goto(f"{url}/agents/")
    expect(bob.locator("#agent-researcher")).to_be_visible()
    assert bob.get_by_role("heading", name="Register an agent").count() == 0
    assert bob.get_by_role("link", name="Edit Researcher").count() == 0
    assert bob.get_by_role("button", name="Disable Researcher").count() == 0
    for path in ("/agents/new/", "/agents/researcher/edit/", "/agents/researcher/toggle/"):
        for htmx in (False, True):
            status = post_status(bob, f"{url}{path}", htmx)
            assert status == 403, f"bob POST {path} (htmx={htmx}): {status}"
    assert bob.goto(f"{url}/agents/researcher/edit/").status == 403
    assert Agent.objects.get(slug="researcher").enabled
    # The same request is allowed to an operator where it should be: the 403s are not CSRF's.
    bob.goto(f"{url}/jobs/{job_id}/")
    assert post_status(bob, f"{url}/jobs/{job_id}/approve/", True) == 200
    assert Job.objects.get(pk=job_id).status != JobStatus.WAITING

    # The agent manager toggles an agent; the row updates in place.
    dave = user_page(browser, url, "dave")
    dave.goto(f"{url}/agents/")
    expect(dave.locator("#connection")).to_have_text("live")
    mark_page(dave)
    row = dave.locator("#agent-researcher")
    expect(row).to_have_attribute("data-enabled", "true")
    dave.get_by_role("button", name="Disable Researcher").click()
    expect(row).to_have_attribute("data-enabled", "false")
    expect(row.get_by_role("button", name="Enable Researcher")).to_be_visible()
    assert_steady(dave)
    assert not Agent.objects.get(slug="researcher").enabled
    assert AuditEntry.objects.filter(actor__username="dave", agent__slug="researcher").exists()
    dave.get_by_role("button", name="Enable Researcher").click()
    expect(row).to_have_attribute("data-enabled", "true")
    assert Agent.objects.get(slug="researcher").enabled


def stop_web(stack):
    """Stop the stack's web server (SIGTERM, as a deploy does); return its process.

    Daphne in production mode; standalone, the one process that serves everything.
    """
    servers = ("daphne", "runstandalone")
    web = next(p for p in stack.procs if any(s in " ".join(map(str, p.args)) for s in servers))
    web.send_signal(signal.SIGTERM)
    web.wait(timeout=15)
    return web


def test_the_pages_show_a_lost_connection_and_catch_up_after_it(own_stack, seeded, browser):
    url = own_stack.base_url
    alice = user_page(browser, url, "alice")
    job_id = submit_in_form(alice, "Before the outage", review=True)
    wait_until(
        lambda: Job.objects.filter(pk=job_id, status=JobStatus.WAITING).exists(),
        "the plan to await review",
    )
    board = alice
    board.goto(f"{url}/")
    expect(board.locator("#connection")).to_have_text("live")
    mark_page(board)
    job_page = alice.context.new_page()
    open_job(job_page, url, job_id)
    expect(job_page.locator("#job-header h1")).to_contain_text("Before the outage")

    web = stop_web(own_stack)
    for page in (board, job_page):
        expect(page.locator("#connection")).to_have_text("disconnected", timeout=15_000)
        expect(page.locator("#connection")).to_have_attribute("data-state", "disconnected")

    # While the server is away: a change that no fragment will ever announce.
    Job.objects.filter(pk=job_id).update(title="Renamed during the outage")
    started = time.monotonic()
    log = own_stack.logs / "web-restarted.log"
    again = _spawn(list(web.args), own_stack.env, log)
    own_stack.procs[own_stack.procs.index(web)] = again
    _wait_for(
        lambda: httpx.get(f"{url}/login/", timeout=2).status_code == 200, "web server", log, again
    )
    print(f"web server back after {time.monotonic() - started:.1f} s")

    for page in (board, job_page):
        expect(page.locator("#connection")).to_have_text("live", timeout=40_000)
    expect(job_page.locator("#job-header h1")).to_contain_text(
        "Renamed during the outage", timeout=10_000
    )
    expect(board.locator(f"#job-card-{job_id}")).to_contain_text(
        "Renamed during the outage", timeout=10_000
    )
    assert not_reloaded(board) and not_reloaded(job_page)

    # And live updates flow again on the new connection.
    job_page.get_by_role("button", name="Approve the plan").click()
    expect(board.locator(f"#cards-completed #job-card-{job_id}")).to_be_visible(timeout=60_000)
    assert not_reloaded(board)


def test_an_idle_page_keeps_its_connection(own_stack, seeded, browser):
    """Nothing happens for a while: the socket stays open (no close, no reconnect churn)."""
    url = own_stack.base_url
    alice = user_page(browser, url, "alice")
    job_id = submit_in_form(alice, "Soon idle")
    wait_until(
        lambda: Job.objects.filter(pk=job_id, status=JobStatus.COMPLETED).exists(), "the job"
    )
    # A finished job's page: nothing more is published to it.
    open_job(alice, url, job_id)
    alice.evaluate(
        "window.__messages = 0;"
        "document.addEventListener('htmx:wsAfterMessage', () => window.__messages++)"
    )
    deadline = time.monotonic() + 12  # more than twice any 5 s read timeout on the way
    while time.monotonic() < deadline:
        assert_steady(alice)
        alice.wait_for_timeout(500)
    print("fragments received while idle:", alice.evaluate("window.__messages"))
    expect(alice.locator("#connection")).to_have_text("live")
    assert_steady(alice)
