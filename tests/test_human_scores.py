"""A person's 1–5 rating of a job: from its page, audited, one per person (a new rating
replaces the old), and the job page's scores with who or what gave each."""

import re

import pytest
from django.core.exceptions import PermissionDenied

from agents.actions import scores
from agents.models import AuditEntry, Job, JobStatus, LLMCall, Score

from . import experiment_rows as rows
from .cast import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def job() -> Job:
    return Job.objects.create(
        title="Summarise the outage", description="d", status=JobStatus.COMPLETED, result="ok"
    )


def test_an_operator_rates_a_finished_job_from_its_page(client, operator, job):
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'action="/jobs/{job.pk}/rate/"' in html and "No scores yet." in html
    response = client.post(
        f"/jobs/{job.pk}/rate/", {"rate-rating": "4", "rate-comment": "Clear, one slip."}
    )
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    score = Score.objects.get(job=job)
    assert (score.source, score.rating, score.value, score.given_by) == ("human", 4, 0.75, operator)
    assert score.reason == "Clear, one slip."
    assert AuditEntry.objects.get(action="rate_job").actor == operator
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    scores_html = html[html.index('id="job-scores"') :]
    assert "0.75" in scores_html and "(4/5)" in scores_html and "bob" in scores_html
    assert "Clear, one slip." in scores_html
    assert re.search(r'value="4"[^>]*checked', scores_html)  # the form shows bob's rating


def test_a_new_rating_replaces_the_persons_previous_one(job):
    bob, alice = person("bob"), person("alice")
    scores.rate(job, bob, 2, "weak")
    scores.rate(job, alice, 5, "")
    scores.rate(job, bob, 5, "better on a second read")
    assert Score.objects.filter(job=job, given_by=bob).count() == 1
    mine = Score.objects.get(job=job, given_by=bob)
    assert (mine.rating, mine.value, mine.reason) == (5, 1.0, "better on a second read")
    assert Score.objects.filter(job=job).count() == 2
    assert AuditEntry.objects.filter(action="rate_job").count() == 3


def test_a_running_job_cannot_be_rated(client, operator):
    running = Job.objects.create(title="t", description="d", status=JobStatus.WORKING)
    html = client.get(f"/jobs/{running.pk}/").content.decode()
    assert "/rate/" not in html
    with pytest.raises(scores.RatingRefused):
        scores.rate(running, operator, 3)
    client.post(f"/jobs/{running.pk}/rate/", {"rate-rating": "3"})
    assert not Score.objects.exists()


@pytest.mark.parametrize("rating", [0, 6, "5"])
def test_a_rating_is_a_whole_number_from_1_to_5(job, rating):
    with pytest.raises(scores.RatingRefused):
        scores.rate(job, person("bob"), rating)
    assert not Score.objects.exists()


def test_a_viewer_sees_scores_but_no_form_and_may_not_rate(client, viewer, job):
    rows.add_score_to_job(job, "Exact", 1.0)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Exact" in html and "/rate/" not in html
    assert client.post(f"/jobs/{job.pk}/rate/", {"rate-rating": "5"}).status_code == 403
    with pytest.raises(PermissionDenied):
        scores.rate(job, viewer, 5)
    assert not Score.objects.filter(source="human").exists()


def test_someone_without_a_role_may_not_rate(client, job):
    from .conftest import logged_in

    logged_in(client, "eve")
    assert client.post(f"/jobs/{job.pk}/rate/", {"rate-rating": "5"}).status_code == 403
    assert not Score.objects.exists()


def test_a_judges_score_links_to_its_call(client, viewer, job):
    call = LLMCall.objects.create(
        job=job,
        purpose="judge",
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "Grade this: ok"}],
        response='{"score": 0.9, "reason": "fine"}',
    )
    score = rows.add_score_to_job(job, "Judge", 0.9, source="judge", call=call)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/scores/{score.pk}/call/"' in html and "LLM judge" in html
    page = client.get(f"/scores/{score.pk}/call/").content.decode()
    assert "Grade this: ok" in page and "&quot;score&quot;: 0.9" in page


def test_an_invalid_rating_is_refused_with_a_message(client, operator, job):
    response = client.post(f"/jobs/{job.pk}/rate/", {"rate-rating": "9"}, follow=True)
    assert "choose a rating from 1 to 5" in response.content.decode()
    assert not Score.objects.exists()


def test_an_experiments_job_names_its_experiment_and_case(client, viewer):
    made = rows.experiment("Baseline", {rows.scorer("Exact"): [1.0, 0.0]})
    case = made.cases.get(position=2)
    html = client.get(f"/jobs/{case.job_id}/").content.decode()
    assert f'Case #2 of experiment <a href="/experiments/{made.pk}/">' in html
    scores_html = html[html.index('id="job-scores"') :]
    assert "Exact gave 0.0" in scores_html and "Exact gave 1.0" not in scores_html


def test_a_job_with_nothing_to_score_or_show_has_no_scores_section(client, viewer, job):
    assert 'id="job-scores"' not in client.get(f"/jobs/{job.pk}/").content.decode()
