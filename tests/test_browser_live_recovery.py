"""An open page that missed live updates notices within seconds, says so and catches up."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from agents.events import BOARD_GROUP
from agents.models import Job, JobStatus
from agents.redisconn import redis_client
from dashboard.live import SEQ_PREFIX

from .browser import not_reloaded, user_page
from .cast import PASSWORD
from .stack import login, submit, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

# Every state the connection badge takes from now on, in order.
RECORD_STATES = """() => {
  window.__batonStates = [];
  const badge = document.getElementById('connection');
  new MutationObserver(() => window.__batonStates.push(badge.dataset.state))
    .observe(badge, {attributes: true, attributeFilter: ['data-state']});
}"""
COUNT_BEATS = """() => {
  window.__batonBeats = 0;
  document.addEventListener('htmx:wsBeforeMessage', event => {
    if (event.detail.message.startsWith('<!--beat ')) window.__batonBeats++;
  });
}"""


@pytest.fixture
def board(stack, seeded, browser):
    if not stack.production:
        pytest.skip("needs the Redis of production mode (REDIS_URL)")
    page = user_page(browser, stack.base_url, "alice")
    expect(page.locator("#connection")).to_have_text("live")
    page.evaluate("window.__batonNotReloaded = true")
    page.evaluate(RECORD_STATES)
    return page


def test_a_board_catches_up_after_redis_is_flushed(stack, board):
    # What a Redis restart does here: channel groups, watchers and queued batches are gone,
    # while the page's socket stays open.
    redis_client(settings.REDIS_URL).flushdb()
    submit(login(stack.base_url, "bob", PASSWORD), "Submitted after the flush")

    card = board.locator("#cards-completed article", has_text="Submitted after the flush")
    expect(card).to_be_visible(timeout=30_000)
    expect(board.locator("#connection")).to_have_text("live")
    assert "stale" in board.evaluate("window.__batonStates"), "the page never said it may be stale"
    assert not_reloaded(board)


def test_a_board_catches_up_after_a_fragment_is_lost(stack, seeded, board):
    # A finished job: nothing will announce it again.
    job = Job.objects.create(
        title="Renamed unannounced", description="A job to rename.", status=JobStatus.COMPLETED
    )
    board.reload()  # the card is on the page
    board.evaluate("window.__batonNotReloaded = true")
    board.evaluate(RECORD_STATES)
    board.evaluate(COUNT_BEATS)
    # The page has heard the board's number.
    wait_until(lambda: board.evaluate("window.__batonBeats") > 0, "a heartbeat", timeout=10)
    # A fragment that left for the board and never arrived (a full channel drops it): the
    # change it carried, and the number it took.
    Job.objects.filter(pk=job.pk).update(title="Renamed, and the page knows")
    redis_client(settings.REDIS_URL).incr(SEQ_PREFIX + BOARD_GROUP)

    expect(board.locator(f"#job-card-{job.pk}")).to_contain_text(
        "Renamed, and the page knows", timeout=10_000
    )
    expect(board.locator("#connection")).to_have_text("live")
    assert "stale" in board.evaluate("window.__batonStates")
    assert not_reloaded(board)


def test_a_page_catches_up_on_what_changed_before_its_socket_joined(stack, seeded, browser):
    # A change made while no page watched the job was announced to nobody: here one made
    # between the page's render and its socket joining, and never announced at all.
    job = Job.objects.create(
        title="Changed before the socket", description="d", status=JobStatus.WORKING
    )
    page = user_page(browser, stack.base_url, "alice")

    def join_late(socket) -> None:
        Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, result="Done meanwhile.")
        socket.connect_to_server()

    page.route_web_socket(f"**/ws/jobs/{job.pk}/", join_late)
    page.goto(f"{stack.base_url}/jobs/{job.pk}/")
    expect(page.locator("#connection")).to_have_text("live")
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=10_000)
