"""The bulk actions page: reached from the board with its filter, a preview of how many match
and which would be skipped, then a confirmation that acts on the jobs previewed and no others,
with one audit entry; operators only; bad input changes nothing."""

import re

import pytest

from agents.models import AuditEntry, Job, JobStatus

from .api_support import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def tagged() -> dict[str, Job]:
    return {
        "queued": make_job(JobStatus.QUEUED, title="Queued one", tags="incident"),
        "working": make_job(JobStatus.WORKING, title="Working one", tags="incident other"),
        "completed": make_job(JobStatus.COMPLETED, title="Done one", tags="incident"),
        "untagged": make_job(JobStatus.QUEUED, title="Not tagged"),
    }


def html_of(response) -> str:
    return response.content.decode()


def preview(client, **params):
    return client.get("/jobs/bulk/", params)


def confirm_data(html: str) -> dict:
    form = re.search(r'<form method="post" class="bulk-confirm".*?</form>', html, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


def test_the_board_links_to_it_with_its_filter(client, operator, tagged):
    board = html_of(client.get("/", {"tag": "incident", "priority": "5"}))
    link = re.search(r'<a href="(/jobs/bulk/[^"]*)" class="bulk-link">Bulk actions</a>', board)
    assert link and "tag=incident" in link.group(1) and "priority=5" in link.group(1)
    page = html_of(client.get(link.group(1).replace("&amp;", "&")))
    assert re.search(r'name="tag" value="incident"', page) and "Preview" in page
    assert "bulk-preview" not in page  # nothing previewed before an action is chosen


def test_the_preview_counts_and_names_what_would_be_skipped(client, operator, tagged):
    html = html_of(preview(client, tag="incident", action="cancel"))
    summary = re.sub(r"<[^>]+>|\s+", " ", re.search(r'id="bulk-summary">(.*?)</p>', html, re.S)[1])
    assert re.sub(r"\s+", " ", summary).strip() == (
        "3 jobs match. Cancel applies to 2 ; 1 would be skipped."
    )
    assert "1 skipped: already finished" in html
    assert "Queued one" in html and "Done one" in html and "Not tagged" not in html
    assert "Cancel 2 jobs" in html and "checked again when you confirm" in html
    assert not AuditEntry.objects.exists()
    assert Job.objects.filter(status=JobStatus.CANCELLED).count() == 0


def test_confirming_acts_on_the_previewed_jobs_only(client, operator, tagged, no_broker):
    data = confirm_data(html_of(preview(client, tag="incident", action="cancel")))
    assert data["action"] == "cancel" and data["tag"] == "incident"
    late = make_job(JobStatus.QUEUED, title="Tagged after the preview", tags="incident")
    response = client.post("/jobs/bulk/", data)
    assert response.status_code == 302 and response["Location"] == "/?tag=incident"
    statuses = dict(Job.objects.values_list("title", "status"))
    assert statuses["Queued one"] == statuses["Working one"] == JobStatus.CANCELLED
    assert statuses["Done one"] == JobStatus.COMPLETED
    assert statuses[late.title] == statuses["Not tagged"] == JobStatus.QUEUED
    entry = AuditEntry.objects.get()
    assert entry.actor == operator
    page = html_of(client.get(response["Location"]))
    assert "Cancelled 2 jobs; skipped 1: already finished (1)." in page


def test_a_viewer_has_no_bulk_actions(client, viewer, tagged):
    assert "Bulk actions" not in html_of(client.get("/"))
    assert preview(client, tag="incident", action="cancel").status_code == 403
    ids = ",".join(str(job.pk) for job in tagged.values())
    assert client.post("/jobs/bulk/", {"action": "cancel", "ids": ids}).status_code == 403
    assert not Job.objects.filter(status=JobStatus.CANCELLED).exists()


def test_a_range_that_holds_nothing_is_refused(client, operator, tagged):
    response = preview(
        client,
        action="cancel",
        created_after="2026-12-07 10:00",
        created_before="2026-12-07 09:00",
    )
    assert response.status_code == 400
    assert "must come before" in html_of(response) and "bulk-preview" not in html_of(response)


def test_an_unknown_action_is_refused(client, operator, tagged):
    response = preview(client, tag="incident", action="explode")
    assert response.status_code == 400 and "bulk-preview" not in html_of(response)


def test_a_tampered_confirmation_does_nothing(client, operator, tagged, no_broker):
    for ids in ("1,two", "", ",".join(["1"] * 50_000)):
        response = client.post("/jobs/bulk/", {"action": "cancel", "ids": ids}, follow=True)
        assert "Nothing was done" in html_of(response)
    assert not Job.objects.filter(status=JobStatus.CANCELLED).exists()
    assert not AuditEntry.objects.exists()


def test_more_than_the_limit_is_not_offered(client, operator, tagged, settings):
    settings.BULK_MAX_JOBS = 2
    html = html_of(preview(client, tag="incident", action="cancel"))
    assert "More than 2 jobs match: narrow the filter" in html
    assert "bulk-confirm" not in html


def test_a_bulk_rerun_says_which_jobs_it_made(client, operator, tagged, no_broker):
    data = confirm_data(html_of(preview(client, tag="incident", action="rerun")))
    page = html_of(client.post("/jobs/bulk/", data, follow=True))
    new = Job.objects.get(rerun_of=tagged["completed"])
    assert f"Re-ran 1 job; skipped 2: not finished yet (2); the new jobs are #{new.pk}." in page
