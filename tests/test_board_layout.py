"""The board puts work first: "New job" closed until asked for (open with errors), the
filter in force said on the page with a way to clear it, and paging that keeps the filter."""

import re

import pytest

from agents.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def new_job(page: str) -> str:
    """The opening tag of the "New job" disclosure."""
    found = re.search(r'<details class="new-job" id="new-job"[^>]*>', page)
    assert found, "no New job disclosure on the board"
    return found.group(0)


def test_new_job_is_closed_by_default_and_holds_the_plain_form(client, operator):
    page = client.get("/").content.decode()
    assert " open" not in new_job(page)
    start = page.index('id="new-job"')
    disclosure = page[start : page.index("</details>", start)]
    assert "<summary>New job</summary>" in disclosure
    assert 'action="/jobs/submit/"' in disclosure and 'method="post"' in disclosure
    for name in ("title", "description", "priority", "tags", "budget_tokens", "budget_cost"):
        assert f'name="{name}"' in disclosure, name
    assert 'name="review_plan"' in disclosure
    # The columns come after it, with nothing else as tall in between.
    assert page.index('id="new-job"') < page.index('class="board"')


def test_new_job_comes_back_open_with_its_errors_and_what_was_typed(client, operator):
    data = {"title": "Kept title", "description": "short", "priority": "3", "tags": "ops"}
    response = client.post("/jobs/submit/", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert " open" in new_job(page)
    assert "at least 10 characters" in page
    assert 'value="Kept title"' in page and 'value="ops"' in page
    assert not Job.objects.filter(title="Kept title").exists()


def test_a_viewer_has_no_new_job(client, viewer):
    page = client.get("/").content.decode()
    assert 'id="new-job"' not in page
    assert 'class="board"' in page


def test_the_filter_in_force_is_said_with_a_clear_link(client, operator):
    plain = client.get("/").content.decode()
    assert 'id="applied-filter"' not in plain
    page = client.get("/", {"tag": "Ops", "priority": "2", "q": ""}).content.decode()
    said = re.search(r'<p class="applied" id="applied-filter">(.*?)</p>', page, re.S)
    assert said, "the filter in force is not said"
    text = " ".join(re.sub(r"<[^>]+>", "", said.group(1)).split())
    assert "priority is 2" in text and "tag is ops" in text and "search" not in text
    assert '<a href="/">Clear filters</a>' in said.group(1)
    status = client.get("/", {"status": "failed"}).content.decode()
    assert "status is Failed" in " ".join(re.sub(r"<[^>]+>", "", status).split())


def test_paging_the_bulk_link_and_more_keep_the_filter(client, operator):
    Job.objects.bulk_create(
        Job(title=f"job {i}", description="d" * 20, status=JobStatus.QUEUED, tags="ops")
        for i in range(130)
    )
    page = client.get("/", {"status": "queued", "tag": "ops", "page": "2"}).content.decode()
    links = re.findall(r'href="\?([^"]*)" rel="(?:prev|next)"', page)
    assert len(links) == 2
    for link in links:
        params = dict(p.split("=", 1) for p in link.replace("&amp;", "&").split("&") if p)
        assert params["status"] == "queued" and params["tag"] == "ops" and "page" in params
    assert 'href="/jobs/bulk/?status=queued&amp;tag=ops"' in page  # not the page number
    board = client.get("/", {"tag": "ops"}).content.decode()
    assert 'href="?tag=ops&amp;status=queued">105 more…</a>' in board


def test_columns_are_keyboard_reachable_scroll_areas(client, operator):
    page = client.get("/").content.decode()
    for status in JobStatus.values:
        tag = re.search(rf'<section class="column" id="col-{status}"[^>]*>', page).group(0)
        assert 'tabindex="0"' in tag and f'aria-labelledby="col-{status}-title"' in tag
