"""The template and schedule pages: a viewer reads them and has no controls, an operator keeps
templates and schedules (through audited actions), submits a template in one click from its
page or the board; bad input is refused and stores nothing. Tags on the board's cards and the
job page, where a job came from, and the live card equal to a reloaded one."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import AuditEntry, Job, JobTemplate, Schedule, ScheduleRun
from dashboard.live import render_board

from .api_support import make_job
from .conftest import logged_in

pytestmark = pytest.mark.django_db

TEMPLATE = {
    "name": "digest",
    "title": "Digest of {date}",
    "description": "Summarise what happened on {yesterday}.",
    "priority": "3",
    "tags": "nightly, research",
}


@pytest.fixture
def digest() -> JobTemplate:
    return JobTemplate.objects.create(
        name="digest",
        title="Digest of {date}",
        description="Summarise what happened on {yesterday}.",
        priority=3,
        tags="nightly research",
    )


@pytest.fixture
def nightly(digest) -> Schedule:
    return Schedule.objects.create(
        name="Nightly digest",
        template=digest,
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        next_run_at=datetime(2030, 1, 2, 1, 30, tzinfo=UTC),
    )


def html_of(response) -> str:
    return response.content.decode()


# Reading, and who may write


def test_a_viewer_reads_templates_and_schedules_without_controls(client, viewer, nightly):
    html = html_of(client.get("/templates/"))
    assert "digest" in html and "Digest of {date}" in html and "Nightly digest" in html
    assert "Submit now" not in html and "New template" not in html and "/edit/" not in html
    html = html_of(client.get("/schedules/"))
    assert "Nightly digest" in html and "At 02:30" in html and "Europe/Berlin" in html
    assert "New schedule" not in html
    html = html_of(client.get(f"/schedules/{nightly.pk}/"))
    assert "Next runs" in html and "Pause" not in html and "Delete" not in html
    nav = html_of(client.get("/")).split("</nav>")[0]
    assert 'href="/templates/"' in nav and 'href="/schedules/"' in nav


def test_someone_with_no_role_reads_neither_nor_sees_them_in_the_nav(client, nightly):
    logged_in(client, "eve")
    for url in ("/templates/", "/schedules/", f"/schedules/{nightly.pk}/"):
        assert client.get(url).status_code == 403
    nav = html_of(client.get("/templates/")).split("</nav>")[0]
    assert "/templates/" not in nav and "/schedules/" not in nav


def test_a_viewer_cannot_write(client, viewer, nightly, digest):
    posts = {
        "/templates/new/": TEMPLATE,
        "/templates/digest/edit/": {**TEMPLATE, "title": "Changed"},
        "/templates/digest/delete/": {},
        "/templates/digest/submit/": {},
        "/schedules/new/": {"name": "x", "template": digest.pk, "interval_s": "60"},
        f"/schedules/{nightly.pk}/edit/": {"name": "y", "template": digest.pk, "cron": "* * * * *"},
        f"/schedules/{nightly.pk}/pause/": {},
        f"/schedules/{nightly.pk}/resume/": {},
        f"/schedules/{nightly.pk}/delete/": {},
        "/jobs/bulk/": {"action": "cancel", "ids": "1"},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    for url in ("/templates/new/", "/templates/digest/edit/", "/schedules/new/", "/jobs/bulk/"):
        assert client.get(url).status_code == 403, url
    assert list(JobTemplate.objects.values_list("name", "title")) == [
        ("digest", "Digest of {date}")
    ]
    assert list(Schedule.objects.values_list("name", "enabled")) == [("Nightly digest", True)]
    assert not Job.objects.exists() and not AuditEntry.objects.exists()


# Templates


def test_an_operator_saves_a_template_and_sees_the_placeholders(client, operator):
    page = html_of(client.get("/templates/new/"))
    assert "{date}" in page and "{yesterday}" in page and "the day before" in page
    response = client.post("/templates/new/", TEMPLATE)
    assert response.status_code == 302 and response["Location"] == "/templates/"
    saved = JobTemplate.objects.get()
    assert (saved.name, saved.tags, saved.priority) == ("digest", "nightly research", 3)
    assert AuditEntry.objects.filter(action="create_template", actor=operator).exists()
    html = html_of(client.get("/templates/"))
    assert 'id="template-digest"' in html and "Submit now" in html and "nightly" in html


def test_an_unknown_placeholder_is_refused_and_nothing_is_stored(client, operator):
    response = client.post("/templates/new/", {**TEMPLATE, "title": "Digest of {tomorrow}"})
    assert response.status_code == 400
    assert "Unknown placeholder {tomorrow}" in html_of(response)
    bad_tags = client.post("/templates/new/", {**TEMPLATE, "tags": "no spaces!"})
    assert bad_tags.status_code == 400 and "is not a tag" in html_of(bad_tags)
    assert not JobTemplate.objects.exists() and not AuditEntry.objects.exists()


def test_a_taken_name_is_refused(client, operator, digest):
    response = client.post("/templates/new/", TEMPLATE)
    assert response.status_code == 400 and "A template has this name already." in html_of(response)
    assert JobTemplate.objects.count() == 1


def test_an_operator_edits_a_template(client, operator, digest):
    form = html_of(client.get("/templates/digest/edit/"))
    assert 'value="nightly, research"' in form  # the tags as typed
    response = client.post("/templates/digest/edit/", {**TEMPLATE, "title": "Weekly {week}"})
    assert response.status_code == 302
    digest.refresh_from_db()
    assert digest.title == "Weekly {week}"
    entry = AuditEntry.objects.get(action="edit_template")
    assert "title" in entry.detail and entry.actor == operator


def test_a_template_a_schedule_uses_is_not_deleted(client, operator, nightly):
    response = client.post("/templates/digest/delete/", follow=True)
    html = html_of(response)
    assert "Template digest is not deleted" in html and "Nightly digest" in html
    assert JobTemplate.objects.filter(name="digest").exists()
    Schedule.objects.all().delete()
    client.post("/templates/digest/delete/")
    assert not JobTemplate.objects.exists()


def test_submit_now_makes_one_job_per_click(client, operator, digest, no_broker):
    token = str(uuid.uuid4())
    response = client.post("/templates/digest/submit/", {"submit_token": token})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    today = timezone.now().date().isoformat()
    assert (job.title, job.template, job.tags, job.priority) == (
        f"Digest of {today}",
        digest,
        "nightly research",
        3,
    )
    client.post("/templates/digest/submit/", {"submit_token": token})  # a double click
    assert Job.objects.count() == 1
    page = html_of(client.get(f"/jobs/{job.pk}/"))
    assert "From template" in page and 'href="/templates/#template-digest"' in page
    assert 'href="/?tag=nightly"' in page and 'href="/?tag=research"' in page


def test_the_board_offers_templates_to_submitters_only(client, operator, digest, no_broker):
    board = html_of(client.get("/"))
    assert "From a template" in board and 'action="/templates/digest/submit/"' in board
    assert 'name="tags"' in board  # the submit form's field
    token = re.search(
        r'name="submit_token" value="([0-9a-f-]{36})">\s*<input type="hidden" '
        r'name="next"',
        board,
    ).group(1)
    response = client.post("/templates/digest/submit/", {"submit_token": token, "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    job = Job.objects.get()
    assert f"Job #{job.pk} {job.title} submitted from template digest." in html_of(client.get("/"))
    # Elsewhere than this site, `next` is not followed.
    other = client.post("/templates/digest/submit/", {"next": "https://example.org/"})
    assert other["Location"].startswith("/jobs/")


def test_a_viewer_sees_no_template_menu_nor_bulk_link(client, viewer, digest):
    board = html_of(client.get("/"))
    assert "From a template" not in board and "Bulk actions" not in board


# Schedules


def test_an_operator_schedules_a_template_and_sees_its_next_runs(client, operator, digest):
    page = html_of(client.get("/schedules/new/?template=digest"))
    assert f'<option value="{digest.pk}" selected>' in page and 'list="time-zones"' in page
    assert '<option value="Europe/Berlin">' in page
    response = client.post(
        "/schedules/new/",
        {
            "name": "Nightly digest",
            "template": digest.pk,
            "cron": "30 2 * * *",
            "timezone": "Europe/Berlin",
            "enabled": "on",
            "on_missed": "skip",
            "on_overlap": "skip",
        },
    )
    schedule = Schedule.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/schedules/{schedule.pk}/"
    assert AuditEntry.objects.filter(action="create_schedule", actor=operator).exists()
    html = html_of(client.get(response["Location"]))
    # Five due times, each at 02:30 in Berlin and shown in UTC beside it.
    assert html.count(" 02:30:00 CET") + html.count(" 02:30:00 CEST") == 5
    assert len(re.findall(r" 0[01]:30:00 UTC", html)) == 5
    assert "Pause" in html and "Delete" in html


def test_a_bad_cron_is_refused_and_nothing_is_stored(client, operator, digest):
    data = {"name": "Bad", "template": digest.pk, "cron": "61 * * * *", "timezone": "UTC"}
    data.update(on_missed="skip", on_overlap="skip")
    response = client.post("/schedules/new/", data)
    assert response.status_code == 400 and 'class="error"' in html_of(response)
    both = client.post("/schedules/new/", {**data, "cron": "* * * * *", "interval_s": "5"})
    assert both.status_code == 400 and "not both" in html_of(both)
    zone = client.post("/schedules/new/", {**data, "cron": "* * * * *", "timezone": "Mars/Base"})
    assert zone.status_code == 400
    assert not Schedule.objects.exists() and not AuditEntry.objects.exists()


def test_pause_resume_and_delete(client, operator, nightly):
    client.post(f"/schedules/{nightly.pk}/pause/")
    nightly.refresh_from_db()
    assert not nightly.enabled
    html = html_of(client.get(f"/schedules/{nightly.pk}/"))
    assert "Resume" in html and "Paused: nothing runs until it is resumed." in html
    assert "paused" in html_of(client.get("/schedules/"))
    client.post(f"/schedules/{nightly.pk}/resume/")
    nightly.refresh_from_db()
    assert nightly.enabled and nightly.next_run_at > timezone.now()
    client.post(f"/schedules/{nightly.pk}/delete/")
    assert not Schedule.objects.exists()
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "pause_schedule",
        "resume_schedule",
        "delete_schedule",
    ]


def test_a_schedules_runs_link_their_jobs_and_the_job_names_its_schedule(client, viewer, nightly):
    due = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)  # 02:30 in Berlin, summer time
    job = make_job(status="completed", title="Digest of 2026-07-01", template=nightly.template)
    job.tags = "nightly research"
    job.save(update_fields=["tags"])
    ScheduleRun.objects.create(schedule=nightly, due_at=due, job=job, outcome="started")
    ScheduleRun.objects.create(
        schedule=nightly, due_at=due + timedelta(days=1), outcome="skipped_overlap", note="#1"
    )
    html = html_of(client.get(f"/schedules/{nightly.pk}/"))
    assert f'href="/jobs/{job.pk}/"' in html and "2026-07-01 02:30:00 CEST" in html
    assert "Skipped: the previous run was still going" in html
    page = html_of(client.get(f"/jobs/{job.pk}/"))
    assert "Run of schedule" in page and f'href="/schedules/{nightly.pk}/"' in page
    assert "2026-07-01 02:30:00 CEST" in page
    board = html_of(client.get("/"))
    assert f'href="/schedules/{nightly.pk}/"' in board and "schedule Nightly digest" in board


# Tags on the board, live and reloaded


def card_of(html: str, job_id: int) -> str:
    match = re.search(rf'<article [^>]*id="job-card-{job_id}".*?</article>', html, re.S)
    return re.sub(r"\s+", " ", match.group(0).replace(' hx-swap-oob="true"', ""))


def test_cards_show_their_tags_as_filters(client, viewer, nightly):
    tagged = make_job(title="Tagged job", tags="nightly research")
    make_job(title="Untagged job")
    board = html_of(client.get("/"))
    card = card_of(board, tagged.pk)
    assert 'href="/?tag=nightly"' in card and 'href="/?tag=research"' in card
    filtered = html_of(client.get("/", {"tag": "Nightly"}))
    assert "Tagged job" in filtered and "Untagged job" not in filtered
    assert re.search(r'<input type="text" name="tag" value="Nightly"', filtered)


def test_a_live_card_is_the_reloaded_card(client, viewer, nightly):
    job = make_job(title="Digest of 2026-07-01", tags="nightly", template=nightly.template)
    ScheduleRun.objects.create(schedule=nightly, due_at=timezone.now(), job=job, outcome="started")
    reloaded = card_of(html_of(client.get("/")), job.pk)
    live = card_of(render_board({job.pk: False}), job.pk)
    assert live == reloaded and "schedule Nightly digest" in live and "?tag=nightly" in live


def test_where_jobs_came_from_costs_the_board_no_query(client, viewer, nightly):
    for i in range(5):
        make_job(title=f"plain {i}")
    with CaptureQueriesContext(connection) as plain:
        client.get("/")
    for i in range(5):
        job = make_job(title=f"run {i}", tags="a b", template=nightly.template)
        ScheduleRun.objects.create(
            schedule=nightly,
            due_at=timezone.now() + timedelta(minutes=i),
            job=job,
            outcome="started",
        )
    with CaptureQueriesContext(connection) as origin:
        client.get("/")
    assert len(origin) == len(plain)


def test_the_submit_form_takes_tags(client, operator, no_broker):
    data = {"title": "Tagged", "description": "A job with tags on it.", "priority": "5"}
    response = client.post("/jobs/submit/", {**data, "tags": "Incident, db incident"})
    assert response.status_code == 302
    assert Job.objects.get().tags == "incident db"
    bad = client.post("/jobs/submit/", {**data, "title": "Bad", "tags": "a/b"})
    assert bad.status_code == 400 and "is not a tag" in html_of(bad)
    assert Job.objects.count() == 1
