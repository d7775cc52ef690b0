"""Human approval in Chromium: an agent marked as needing approval on its page, a job whose
steps pause for an operator, one rejected with a reason that reaches the next proposal, one
edited and approved, the others approved, until the job completes. The job page is never
reloaded: each question appears, with its form, as it is asked."""

import pytest
from playwright.sync_api import expect

from agents.models import Agent, Approval, AuditEntry, LLMCall, Subtask

from .browser import assert_steady, screenshot, user_page
from .stack import start_stack
from .test_browser_job import open_job, submit_in_form

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

LIVE_TIMEOUT_MS = 60_000
REASON = "Cite two sources for each claim."
EDITED = "Implement it in Go, as one function with a test."


@pytest.fixture(scope="module")
def approval_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(tmp_path_factory.mktemp("browser-approvals"), exclusive=True)
    yield running
    running.stop()


def step(job_id: int, key: str) -> Subtask:
    return Subtask.objects.get(job_id=job_id, key=key)


def test_approve_edit_and_reject_steps_in_the_browser(approval_stack, seeded, browser, request):
    url = approval_stack.base_url
    alice = user_page(browser, url, "alice")

    # The reviewer is marked on its page; the researcher and the coder directly.
    alice.goto(f"{url}/agents/reviewer/edit/")
    alice.get_by_label("Needs approval").check()
    alice.get_by_role("button", name="Save agent").click()
    expect(alice).to_have_url(f"{url}/agents/")
    assert Agent.objects.get(slug="reviewer").needs_approval
    Agent.objects.filter(slug__in=["researcher", "coder"]).update(needs_approval=True)

    alice.goto(f"{url}/")
    job_id = submit_in_form(alice, "Approved job")
    board = alice.context.new_page()
    board.goto(f"{url}/")
    job_page = alice.context.new_page()
    open_job(job_page, url, job_id)

    # The first step pauses before its model call: the board counts it, the job page shows
    # what would be sent, and the operator's forms, without a reload.
    research = job_page.locator(
        ".approval", has=job_page.get_by_role("button", name="Reject research")
    )
    expect(research).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(research).to_contain_text("agent researcher needs approval")
    expect(research).to_contain_text("Your subtask (research)")
    expect(board.locator(f"#job-card-{job_id} .awaiting-approval")).to_have_text(
        "1 awaiting approval", timeout=LIVE_TIMEOUT_MS
    )
    assert not LLMCall.objects.filter(subtask=step(job_id, "research")).exists()
    screenshot(job_page, request, "approval-research-asked")

    # Rejected with a reason: proposed again, the reason after what was rejected.
    research.get_by_label("Reason (goes back to the agent)").fill(REASON)
    research.get_by_role("button", name="Reject research").click()
    again = job_page.locator(
        ".approval", has_text=f"An operator rejected this step as proposed: {REASON}"
    )
    expect(again.get_by_role("button", name="Approve research", exact=True)).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    screenshot(job_page, request, "approval-research-asked-again")
    again.get_by_role("button", name="Approve research", exact=True).click()

    # Research runs with the operator's reason; then coding pauses and is edited.
    coding = job_page.locator(
        ".approval", has=job_page.get_by_role("button", name="Edit and approve coding")
    )
    expect(coding).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    sent = LLMCall.objects.get(subtask=step(job_id, "research")).messages
    assert sent[-1]["content"] == f"An operator rejected this step as proposed: {REASON}"
    coding.get_by_label("Message to send").fill(EDITED)
    coding.get_by_role("button", name="Edit and approve coding").click()

    # Then the review, approved as proposed; the job completes.
    review = job_page.get_by_role("button", name="Approve review", exact=True)
    expect(review).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert LLMCall.objects.get(subtask=step(job_id, "coding")).messages[-1]["content"] == EDITED
    review.click()
    expect(job_page.locator("#job-status")).to_have_text("Completed", timeout=LIVE_TIMEOUT_MS)
    expect(board.locator(f"#cards-completed #job-card-{job_id}")).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    expect(board.locator(f"#job-card-{job_id} .awaiting-approval")).to_have_count(0)
    assert_steady(job_page)
    screenshot(job_page, request, "approval-job-completed")

    decisions = list(
        Approval.objects.filter(job_id=job_id)
        .order_by("pk")
        .values_list("subtask__key", "decision")
    )
    assert decisions == [
        ("research", "rejected"),
        ("research", "approved"),
        ("coding", "edited"),
        ("review", "approved"),
    ]
    audited = AuditEntry.objects.filter(job_id=job_id, action__startswith="approval.")
    assert sorted(audited.values_list("action", "actor__username")) == [
        ("approval.approve", "alice"),
        ("approval.approve", "alice"),
        ("approval.edit", "alice"),
        ("approval.reject", "alice"),
    ]

    # The Approvals page lists the decisions; nothing is pending.
    alice.goto(f"{url}/approvals/")
    expect(alice.get_by_text("No step is awaiting approval.")).to_be_visible()
    expect(alice.locator("#decided-title")).to_be_visible()
