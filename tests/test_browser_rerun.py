"""Re-run from a step in Chromium: from a completed job's subtask, with a changed input, to
the new job completing live, the lineage links both ways and the comparison."""

import pytest
from playwright.sync_api import expect

from agents.models import Job, JobStatus, LLMCall

from .browser import user_page
from .conftest import PASSWORD
from .stack import login, submit, wait_until_terminal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

NEW_INPUT = "Implement it as one shell script, and say which shell."


def test_an_operator_reruns_a_completed_job_from_a_step(stack, seeded, browser):
    url = stack.base_url
    submit(login(url, "bob", PASSWORD), "Re-run walk")
    original = Job.objects.get(title="Re-run walk")
    wait_until_terminal([original.pk])
    original.refresh_from_db()
    assert original.status == JobStatus.COMPLETED
    coding = original.subtasks.get(key="coding")
    stack.reset_simulator()

    page = user_page(browser, url, "bob")
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
    page.get_by_role("button", name="Re-run from coding").click()

    # The new job's page, which follows the run live to its end.
    expect(page.locator("#job-header")).to_have_attribute(
        "data-status", JobStatus.COMPLETED, timeout=60_000
    )
    rerun = Job.objects.get(rerun_of=original)
    assert page.url.endswith(f"/jobs/{rerun.pk}/")
    research = rerun.subtasks.get(key="research")
    expect(page.locator(f"#subtask-{research.pk} summary")).to_contain_text("copied, no call")
    # Coding, review and the synthesis were called; planning and research were not.
    assert stack.simulator_stats()["requests"] == 3
    assert not LLMCall.objects.filter(job=rerun, purpose="plan").exists()
    assert not LLMCall.objects.filter(subtask=research).exists()
    rerun_coding = rerun.subtasks.get(key="coding")
    assert NEW_INPUT in LLMCall.objects.get(subtask=rerun_coding).messages[-1]["content"]

    lineage = page.get_by_role("region", name="Lineage")
    expect(lineage).to_contain_text(f"Re-run of #{original.pk} from coding")
    lineage.get_by_role("link", name=f"#{original.pk}", exact=True).click()
    back = page.get_by_role("region", name="Lineage")
    expect(back).to_contain_text(f"Re-runs: #{rerun.pk} from coding")
    back.get_by_role("link", name="compare").click()

    heading = page.get_by_role("heading", name=f"#{original.pk} and #{rerun.pk} side by side")
    expect(heading).to_be_visible()
    coding_step = page.locator("#step-coding")
    expect(coding_step).to_contain_text("differs")
    expect(coding_step).to_contain_text(NEW_INPUT)
    expect(page.locator("#step-research")).to_contain_text("the same")
    expect(page.locator("#step-research")).to_contain_text("copied, no call")
