"""Re-run from a step in Chromium: from a completed job's subtask, with a changed input, to
the new job completing live, the lineage links both ways and the comparison."""

import pytest
from playwright.sync_api import expect

from agents.models import Job, JobStatus, LLMCall

from .axe import assert_none_blocking, axe_source, check
from .browser import assert_steady, mark_page, screenshot, user_page
from .cast import PASSWORD
from .stack import login, submit, wait_until_terminal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

NEW_INPUT = "Implement it as one shell script, and say which shell."
LATENCY_MS = 1000  # the re-run's three calls take seconds: its page opens before it ends


def test_an_operator_reruns_a_completed_job_from_a_step(slow_stack, seeded, browser, request):
    """Each page on the way is also checked by axe-core (which needs the CSP bypassed)."""
    stack = slow_stack
    url = stack.base_url
    axe, found = axe_source(), {}
    submit(login(url, "bob", PASSWORD), "Re-run walk")
    original = Job.objects.get(title="Re-run walk")
    wait_until_terminal([original.pk])
    original.refresh_from_db()
    assert original.status == JobStatus.COMPLETED
    coding = original.subtasks.get(key="coding")
    stack.reset_simulator()

    page = user_page(browser, url, "bob", bypass_csp=True)
    page.goto(f"{url}/jobs/{original.pk}/")
    step = page.locator(f"#subtask-{coding.pk}")
    step.locator("summary").click()
    step.get_by_role("link", name="Re-run from coding").click()

    expect(
        page.get_by_role("heading", name=f"Re-run job #{original.pk} from coding")
    ).to_be_visible()
    description = page.get_by_label("Description")
    expect(description).to_have_value(coding.description)
    description.fill(NEW_INPUT)
    screenshot(page, request, "rerun-form")
    check(request, page, "re-run form", axe, found)
    page.get_by_role("button", name="Re-run from coding").click()

    # The new job's page, which follows the run live to its end.
    expect(page.locator("#connection")).to_have_text("live")
    mark_page(page)
    opened_at = page.locator("#job-header").get_attribute("data-status")
    assert opened_at != JobStatus.COMPLETED, "the re-run's page must open before it ends"
    expect(page.locator("#job-header")).to_have_attribute(
        "data-status", JobStatus.COMPLETED, timeout=60_000
    )
    assert_steady(page)  # it arrived over the WebSocket, not by a reload
    rerun = Job.objects.get(rerun_of=original)
    assert page.url.endswith(f"/jobs/{rerun.pk}/")
    research = rerun.subtasks.get(key="research")
    expect(page.locator(f"#subtask-{research.pk} summary")).to_contain_text("copied, no call")
    # Coding, review and the synthesis were called (each as often as its tools asked);
    # planning and research were not.
    calls = LLMCall.objects.filter(job=rerun)
    assert stack.simulator_stats()["requests"] == calls.count()
    assert set(calls.values_list("purpose", "subtask__key")) == {
        ("subtask", "coding"),
        ("subtask", "review"),
        ("synthesis", None),
    }
    first = calls.filter(subtask__key="coding").earliest("pk")
    assert NEW_INPUT in next(m["content"] for m in first.messages if m["role"] == "user")

    screenshot(page, request, "rerun-job")
    check(request, page, "re-run job", axe, found)
    lineage = page.get_by_role("region", name="Lineage")
    expect(lineage).to_contain_text(f"Re-run of #{original.pk} from coding")
    lineage.get_by_role("link", name=f"#{original.pk}", exact=True).click()
    back = page.get_by_role("region", name="Lineage")
    expect(back).to_contain_text(f"Re-runs: #{rerun.pk} from coding")
    screenshot(page, request, "rerun-original")
    back.get_by_role("link", name="compare").click()

    heading = page.get_by_role("heading", name=f"#{original.pk} and #{rerun.pk} side by side")
    expect(heading).to_be_visible()
    coding_step = page.locator("#step-coding")
    expect(coding_step).to_contain_text("differs")
    expect(coding_step).to_contain_text(NEW_INPUT)
    expect(page.locator("#step-research")).to_contain_text("the same")
    expect(page.locator("#step-research")).to_contain_text("copied, no call")
    screenshot(page, request, "rerun-compare")
    check(request, page, "comparison", axe, found)
    assert_none_blocking(found)
