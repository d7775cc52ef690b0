"""The annotation queue walks an experiment's ended cases that the person has not rated:
save and next, skip, and the end of the queue."""

import pytest

from agents.models import JobStatus, Score

from . import experiment_rows as rows
from .cast import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def made():
    """Cases 1–3 ended (scored by Exact), case 4 still running."""
    exact = rows.scorer("Exact")
    return rows.experiment(
        "Queue",
        {exact: [1.0, 0.0, 1.0, None]},
        job_statuses=[JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED, "working"],
    )


def shown(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def case_id(made, position: int) -> int:
    return made.cases.get(position=position).pk


def test_it_walks_the_ended_cases_then_says_the_queue_is_empty(client, operator, made):
    url = f"/experiments/{made.pk}/annotate/"
    first = shown(client, url)
    assert "Case #1: Case 1" in first and "Input of case 1" in first and "Expected 1" in first
    assert "output 1" in first and "Exact gave 1.0" in first
    assert "3 ended cases you have not rated" in first

    response = client.post(
        url, {"case": case_id(made, 1), "rate-rating": "5", "rate-comment": "spot on"}
    )
    assert response.status_code == 302 and response["Location"] == f"{url}?after=1"
    rated = Score.objects.get(source="human", given_by=operator)
    assert rated.job == made.cases.get(position=1).job

    second = shown(client, f"{url}?after=1")
    assert "Case #2: Case 2" in second and 'href="?after=2"' in second  # its Skip link
    third = shown(client, f"{url}?after=2")  # skipped case 2
    assert "Case #3: Case 3" in third

    client.post(url, {"case": case_id(made, 3), "rate-rating": "2"})
    after_three = shown(client, f"{url}?after=3")
    assert "Case #" not in after_three and "Start again from the first" in after_three

    again = shown(client, url)
    assert "Case #2: Case 2" in again and "1 ended case you have not rated" in again
    client.post(url, {"case": case_id(made, 2), "rate-rating": "1"})
    done = shown(client, url)
    assert "The queue is empty" in done
    assert Score.objects.filter(source="human", given_by=operator).count() == 3


def test_each_person_has_a_queue_of_their_own(client, operator, made):
    Score.objects.create(
        job=made.cases.get(position=1).job,
        scorer_name="Human",
        source="human",
        value=1.0,
        rating=5,
        given_by=person("alice"),
    )
    assert "Case #1: Case 1" in shown(client, f"/experiments/{made.pk}/annotate/")


def test_a_viewer_reads_the_queue_without_a_form_and_may_not_rate(client, viewer, made):
    url = f"/experiments/{made.pk}/annotate/"
    html = shown(client, url)
    assert "Case #1" in html and "Save and next" not in html
    assert client.post(url, {"case": case_id(made, 1), "rate-rating": "5"}).status_code == 403
    assert not Score.objects.filter(source="human").exists()


def test_a_running_case_cannot_be_rated_through_the_queue(client, operator, made):
    url = f"/experiments/{made.pk}/annotate/"
    response = client.post(url, {"case": case_id(made, 4), "rate-rating": "5"})
    assert response.status_code == 404
    response = client.post(url, {"case": "x", "rate-rating": "5"})
    assert response.status_code == 404
    assert not Score.objects.filter(source="human").exists()


def test_a_rating_without_a_value_is_shown_again_with_its_error(client, operator, made):
    url = f"/experiments/{made.pk}/annotate/"
    response = client.post(url, {"case": case_id(made, 1), "rate-comment": "no number"})
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
