"""Human approval in Chromium: an agent marked as needing approval on its page, a job whose
steps pause for an operator, one rejected with a reason that reaches the next proposal (and
the model, once approved), one edited and approved, until the job completes. The pages are
never reloaded: each question appears, with its forms, as it is asked."""

import pytest
from playwright.sync_api import expect

from agents.models import Agent, Approval, AuditEntry, LLMCall, Subtask

from .axe import assert_none_blocking, axe_source, check
from .browser import assert_steady, mark_page, open_job, screenshot, submit_in_form, user_page
from .stack import start_stack

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

LIVE_TIMEOUT_MS = 60_000
# Planning and the research step (needing no approval) take a few seconds: the pages are open
# and live before the first step pauses, so they see it happen.
LATENCY_MS = 1500
REASON = "Use only the standard library."
EDITED = "Review it for security only, in three bullet points."


@pytest.fixture(scope="module")
def approval_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("browser-approvals"), latency_ms=LATENCY_MS, exclusive=True
        )
    yield running
    running.stop()


def step(job_id: int, key: str) -> Subtask:
    return Subtask.objects.get(job_id=job_id, key=key)


def test_approve_edit_and_reject_steps_in_the_browser(approval_stack, seeded, browser, request):
    url = approval_stack.base_url
    alice = user_page(browser, url, "alice")

    # The reviewer is marked on its page, the coder directly; the researcher runs freely.
    alice.goto(f"{url}/agents/reviewer/edit/")
    alice.get_by_label("Needs approval").check()
    alice.get_by_role("button", name="Save agent").click()
    expect(alice).to_have_url(f"{url}/agents/")
    assert Agent.objects.get(slug="reviewer").needs_approval
    Agent.objects.filter(slug="coder").update(needs_approval=True)

    board = alice.context.new_page()
    board.goto(f"{url}/")
    expect(board.locator("#connection")).to_have_text("live")
    mark_page(board)
    alice.goto(f"{url}/")
    job_id = submit_in_form(alice, "Approved job")
    job_page = alice.context.new_page()
    open_job(job_page, url, job_id)
    assert job_page.locator(".approval").count() == 0, "opened after the first pause"

    # Coding pauses before its model call: the board counts it, the job page shows what
    # would be sent, and the operator's forms, without a reload.
    coding = job_page.locator(".approval", has=job_page.get_by_role("button", name="Reject coding"))
    expect(coding).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(coding).to_contain_text("agent coder needs approval")
    expect(coding).to_contain_text("Your subtask (coding)")
    expect(coding).to_contain_text("What your teammates found")
    expect(board.locator(f"#job-card-{job_id} .awaiting-approval")).to_have_text(
        "1 awaiting approval", timeout=LIVE_TIMEOUT_MS
    )
    assert not LLMCall.objects.filter(subtask=step(job_id, "coding")).exists()
    screenshot(job_page, request, "approval-coding-asked")

    # Rejected with a reason: proposed again, the reason after what was rejected.
    coding.get_by_label("Reason (goes back to the agent)").fill(REASON)
    coding.get_by_role("button", name="Reject coding").click()
    again = job_page.locator(
        ".approval", has_text=f"An operator rejected this step as proposed: {REASON}"
    )
    expect(again.get_by_role("button", name="Approve coding", exact=True)).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    screenshot(job_page, request, "approval-coding-asked-again")

    # axe-core on the job page showing a proposal and its forms, and on the Approvals page.
    auditor = user_page(browser, url, "alice", bypass_csp=True)
    axe, found = axe_source(), {}
    open_job(auditor, url, job_id)
    expect(auditor.get_by_role("button", name="Reject coding")).to_be_visible()
    check(request, auditor, "job (a step awaiting approval)", axe, found)
    auditor.goto(f"{url}/approvals/")
    expect(auditor.get_by_role("button", name="Reject coding")).to_be_visible()
    check(request, auditor, "approvals", axe, found)
    assert_none_blocking(found)
    auditor.context.close()

    # Approved as proposed: the model gets the operator's reason.
    again.get_by_role("button", name="Approve coding", exact=True).click()

    # Then the review pauses, and is edited and approved; the job completes.
    review = job_page.locator(
        ".approval", has=job_page.get_by_role("button", name="Edit and approve review")
    )
    expect(review).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    sent = LLMCall.objects.get(subtask=step(job_id, "coding")).messages
    assert sent[-1]["content"] == f"An operator rejected this step as proposed: {REASON}"
    review.get_by_label("Message to send").fill(EDITED)
    review.get_by_role("button", name="Edit and approve review").click()
    expect(job_page.locator("#job-status")).to_have_text("Completed", timeout=LIVE_TIMEOUT_MS)
    assert LLMCall.objects.get(subtask=step(job_id, "review")).messages[-1]["content"] == EDITED
    expect(board.locator(f"#cards-completed #job-card-{job_id}")).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    expect(board.locator(f"#job-card-{job_id} .awaiting-approval")).to_have_count(0)
    assert_steady(job_page)
    assert_steady(board)
    screenshot(job_page, request, "approval-job-completed")

    decisions = list(
        Approval.objects.filter(job_id=job_id)
        .order_by("pk")
        .values_list("subtask__key", "decision")
    )
    assert decisions == [("coding", "rejected"), ("coding", "approved"), ("review", "edited")]
    audited = AuditEntry.objects.filter(job_id=job_id, action__startswith="approval.")
    assert sorted(audited.values_list("action", "actor__username")) == [
        ("approval.approve", "alice"),
        ("approval.edit", "alice"),
        ("approval.reject", "alice"),
    ]

    # The Approvals page lists the decisions; nothing is pending.
    alice.goto(f"{url}/approvals/")
    expect(alice.get_by_text("No step is awaiting approval.")).to_be_visible()
    expect(alice.locator("#decided-title")).to_be_visible()
