"""axe-core on the main pages: no serious or critical violation (every finding is printed)."""

import pytest
from playwright.sync_api import expect

from agents.models import Job, JobStatus

from .axe import assert_none_blocking, axe_source, check
from .browser import open_job, submit_in_form, user_page
from .stack import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]


@pytest.fixture(scope="session")
def axe():
    return axe_source()


def test_the_login_page_is_accessible(stack, axe, browser, request):
    page = browser.new_page(bypass_csp=True)
    page.goto(f"{stack.base_url}/login/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    found: dict = {}
    check(request, page, "login", axe, found)
    assert_none_blocking(found)


def test_the_main_pages_are_accessible(stack, seeded, axe, browser, request):
    url = stack.base_url
    alice = user_page(browser, url, "alice", bypass_csp=True)
    done = submit_in_form(alice, "Write a changelog", "Summarise the last release's changes.")
    reviewed = submit_in_form(alice, "Plan a migration", "Plan the move to PostgreSQL 17.", True)
    wait_until(
        lambda: (
            Job.objects.filter(pk=done, status=JobStatus.COMPLETED).exists()
            and Job.objects.filter(
                pk=reviewed, status=JobStatus.WAITING, planned_at__isnull=False
            ).exists()
        ),
        "one job completed and one awaiting review",
    )
    found: dict = {}

    alice.goto(f"{url}/")
    expect(alice.locator("#connection")).to_have_text("live")
    expect(alice.locator("#cards-completed article")).to_have_count(1)
    check(request, alice, "board", axe, found)

    open_job(alice, url, done)
    expect(alice.locator("#job-result")).to_be_visible()
    alice.locator("main details").evaluate_all("all => all.forEach(d => d.open = true)")
    check(request, alice, "job (completed, every section open)", axe, found)

    open_job(alice, url, reviewed)
    expect(alice.get_by_role("button", name="Approve the plan")).to_be_visible()
    check(request, alice, "job (plan review)", axe, found)

    alice.goto(f"{url}/agents/")
    expect(alice.get_by_role("heading", name="Register an agent")).to_be_visible()
    expect(alice.locator("#connection")).to_have_text("live")
    check(request, alice, "agents", axe, found)

    alice.goto(f"{url}/agents/researcher/edit/")
    expect(alice.get_by_role("button", name="Save agent")).to_be_visible()
    check(request, alice, "agent edit", axe, found)

    alice.goto(f"{url}/?status=completed")
    check(request, alice, "board (filtered)", axe, found)
    assert_none_blocking(found)
