"""Issue 18's walk in Chromium against the real stack (Daphne, Celery workers running the
schedules loop, the LLM simulator), as an operator takes it: save a template, schedule it
every two seconds, see its next runs, watch a run's card appear on the board live, pause the
schedule, then bulk-cancel the jobs by their tag after the preview and watch their cards turn
cancelled on another board, live.

The template asks for a plan review, so its jobs wait (open, not running) until the bulk
cancel: nothing in the walk depends on how fast a job runs. Only what a user sees is used
(roles, labels, links), and no address but the start page.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from agents.models import AuditEntry, Job, JobStatus, JobTemplate, Schedule, ScheduleRun

from .browser import assert_steady, mark_page, user_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

TEMPLATE = "walk-digest"
SCHEDULE = "Walk every 2 s"
TAG = "walk"
SCHEDULED_CARDS = "article.card:has(a.badge.schedule)"


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def board_live(page: Page) -> None:
    expect(page.locator("#connection")).to_have_text("live")
    mark_page(page)


def save_template(page: Page) -> None:
    nav(page, "Templates")
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill(TEMPLATE)
    page.get_by_label("Title").fill("Walk digest {date}")
    page.get_by_label("Description").fill("Summarise what the team did on {yesterday}.")
    page.get_by_label("Tags").fill(f"{TAG}, digest")
    page.get_by_label("Review the plan before it runs").check()
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_text(f"Template {TEMPLATE} saved.")).to_be_visible()
    expect(page.locator(f"#template-{TEMPLATE}")).to_contain_text("Walk digest {date}")


def schedule_it(page: Page) -> None:
    page.get_by_role("link", name=f"Schedule {TEMPLATE}").click()
    expect(page.get_by_label("Template")).to_have_value(re.compile(r"^\d+$"))  # preselected
    page.get_by_label("Name").fill(SCHEDULE)
    page.get_by_label("Interval (seconds)").fill("2")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_label("When the previous run is still going").select_option(label="Run anyway")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_role("heading", name=SCHEDULE, level=1)).to_be_visible()


def see_next_runs(page: Page) -> list[str]:
    runs = page.get_by_role("region", name="Next runs")
    rows = runs.get_by_role("row").filter(has=page.get_by_role("cell"))
    expect(rows).to_have_count(5)
    shown = rows.all_inner_texts()
    for row in shown:
        assert re.search(r"\d\d:\d\d:\d\d (CET|CEST)\s+.*\d\d:\d\d:\d\d UTC", row), row
    return shown


def see_a_run_come(page: Page) -> None:
    """The schedule's page reads its runs again by itself: a run and its job appear."""
    mark_page(page)
    runs = page.get_by_role("region", name="Recent runs")
    job = runs.get_by_role("link", name=re.compile(r"#\d+ Walk digest \d{4}-"))
    expect(job.first).to_be_visible(timeout=15_000)  # a run is due every 2 s, read every 5 s
    assert_steady(page)


def watch_runs_appear(page: Page) -> int:
    """On the board, opened once: two cards of the schedule's that were not there appear."""
    nav(page, "Board")
    board_live(page)
    before = page.locator(SCHEDULED_CARDS).count()
    page.wait_for_function(
        f"n => document.querySelectorAll('{SCHEDULED_CARDS}').length >= n", arg=before + 2
    )
    assert_steady(page)
    card = page.locator(SCHEDULED_CARDS).first
    expect(card.locator("a.badge.schedule")).to_have_text(f"schedule {SCHEDULE}")
    expect(card.get_by_role("link", name=TAG, exact=True)).to_be_visible()
    return before


def pause(page: Page) -> None:
    page.locator(SCHEDULED_CARDS).first.locator("a.badge.schedule").click()
    expect(page.get_by_role("heading", name=SCHEDULE, level=1)).to_be_visible()
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#schedule-state")).to_have_text("paused")


def bulk_cancel_by_tag(page: Page) -> int:
    nav(page, "Board")
    page.locator("article.card").get_by_role("link", name=TAG, exact=True).first.click()
    expect(page.get_by_label("Tag", exact=True)).to_have_value(TAG)
    page.get_by_role("link", name="Bulk actions").click()
    expect(page.get_by_role("heading", name="Bulk actions")).to_be_visible()
    expect(page.get_by_label("Tag", exact=True)).to_have_value(TAG)  # the board's filter, carried
    page.get_by_label("Cancel", exact=True).check()
    page.get_by_role("button", name="Preview").click()
    summary = page.locator("#bulk-summary")
    expect(summary).to_contain_text("match")
    matched = int(re.match(r"(\d+) jobs? match", summary.inner_text()).group(1))
    expect(summary).to_contain_text(f"Cancel applies to {matched}.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Cancel {matched} job").click()
    expect(page.get_by_text(f"Cancelled {matched} job")).to_be_visible()
    return matched


def test_a_template_is_scheduled_watched_live_and_bulk_cancelled(stack, seeded, browser):
    page = user_page(browser, stack.base_url, "bob")
    page.set_default_timeout(20_000)

    save_template(page)
    schedule_it(page)
    next_runs = see_next_runs(page)
    see_a_run_come(page)
    before = watch_runs_appear(page)
    pause(page)
    schedule = Schedule.objects.get(name=SCHEDULE)
    assert not schedule.enabled

    watcher = user_page(browser, stack.base_url, "carol")  # a viewer, following the board
    board_live(watcher)
    cancelled = bulk_cancel_by_tag(page)

    jobs = Job.objects.filter(template__name=TEMPLATE)
    ids = list(jobs.values_list("pk", flat=True))
    assert cancelled == len(ids) >= before + 2
    # One job per started run, each from the template, tagged, none left open.
    assert set(ids) == set(
        ScheduleRun.objects.filter(schedule=schedule, outcome="started").values_list(
            "job_id", flat=True
        )
    )
    assert set(jobs.values_list("status", flat=True)) == {JobStatus.CANCELLED}
    assert all(tags == "walk digest" for tags in jobs.values_list("tags", flat=True))
    assert AuditEntry.objects.filter(actor__username="bob", job__isnull=True).exists()
    for pk in ids:  # the viewer's board moved every card live
        expect(watcher.locator(f"#job-card-{pk}")).to_have_attribute("data-status", "cancelled")
    assert_steady(watcher)
    print(f"walk: next runs {next_runs[:1]}, {cancelled} runs cancelled")


@pytest.fixture(scope="module")
def axe():
    from .axe import axe_source

    return axe_source()


def test_the_recurring_pages_are_accessible(stack, seeded, axe, browser, request):
    """axe-core on each page of the walk, filled in: no serious or critical violation."""
    from .axe import assert_none_blocking, check

    template = JobTemplate.objects.create(
        name=TEMPLATE, title="Walk digest {date}", description="Summarise the day.", tags=TAG
    )
    schedule = Schedule.objects.create(
        name=SCHEDULE, template=template, interval_s=3600, enabled=False
    )
    job = Job.objects.create(
        title="Walk digest",
        description="Summarise the day.",
        tags=TAG,
        template=template,
        status=JobStatus.CANCELLED,
    )
    ScheduleRun.objects.create(schedule=schedule, due_at=job.created_at, job=job, outcome="started")
    page = user_page(browser, stack.base_url, "bob", bypass_csp=True)
    found: dict = {}
    pages = {
        "templates": "/templates/",
        "template new": "/templates/new/",
        "schedules": "/schedules/",
        "schedule new": f"/schedules/new/?template={TEMPLATE}",
        "schedule": f"/schedules/{schedule.pk}/",
        "bulk preview": f"/jobs/bulk/?tag={TAG}&action=retry",
    }
    for name, path in pages.items():
        page.goto(stack.base_url + path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        check(request, page, name, axe, found)
    page.goto(f"{stack.base_url}/?tag={TAG}")
    page.get_by_text("From a template").click()
    expect(page.get_by_role("button", name=f"Submit {TEMPLATE} now")).to_be_visible()
    check(request, page, "board (tag, templates menu)", axe, found)
    assert_none_blocking(found)
