"""The board: filters, pagination, constant query count, the submit form's guards."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Job, JobStatus

from .cast import person
from .history import make_history

pytestmark = pytest.mark.django_db


def make_jobs(n: int, user) -> None:
    statuses = list(JobStatus.values)
    Job.objects.bulk_create(
        Job(
            title=f"job {i}",
            description="d" * 20,
            status=statuses[i % len(statuses)],
            priority=i % 10,
            submitted_by=user,
        )
        for i in range(n)
    )


def board_queries(client, params: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/", params or {}).status_code == 200
    return len(queries)


def test_its_query_count_does_not_grow_with_the_number_of_jobs(client, operator):
    make_jobs(10, operator)
    few = board_queries(client)
    make_jobs(9_990, operator)
    many = board_queries(client)
    print(f"board queries: {few} at 10 jobs, {many} at 10,000 jobs")
    assert few == many


def test_it_filters_and_paginates(client, operator):
    make_jobs(130, operator)
    Job.objects.create(title="Needle in the stack", description="x" * 20, status="completed")
    page = client.get("/", {"q": "needle"}).content.decode()
    assert "Needle in the stack" in page
    assert "job 1<" not in page

    listing = client.get("/", {"status": "failed"}).content.decode()
    failed = Job.objects.filter(status="failed").count()
    assert f'<span class="count">{failed}</span>' in listing
    second = client.get("/", {"status": "queued", "priority": "0", "page": "2"})
    assert second.status_code == 200
    assert client.get("/", {"status": "bogus"}).status_code == 200  # ignored, not a crash


def test_the_same_form_posted_twice_makes_one_job(client, operator):
    token = str(uuid.uuid4())
    data = {
        "title": "Once",
        "description": "Only one job, please.",
        "priority": "5",
        "submit_token": token,
    }
    client.post("/jobs/submit/", data)
    client.post("/jobs/submit/", data)
    assert Job.objects.filter(title="Once").count() == 1


def test_a_description_over_the_cap_gets_a_clear_error(client, operator):
    data = {"title": "Long", "description": "x" * 20_001, "priority": "5"}
    response = client.post("/jobs/submit/", data)
    assert response.status_code == 400
    assert "Keep the description under 20,000 characters" in response.content.decode()
    assert not Job.objects.filter(title="Long").exists()


def test_a_viewer_sees_no_submit_form_and_cannot_post(client):
    client.force_login(person("carol"))
    page = client.get("/").content.decode()
    assert "Submit a job" not in page and 'id="new-job"' not in page
    data = {"title": "Nope", "description": "Viewers cannot submit.", "priority": "5"}
    assert client.post("/jobs/submit/", data).status_code == 403
    assert not Job.objects.exists()


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_column_counts_count_jobs_not_subtasks(client, operator):
    job = Job.objects.create(title="three parts", description="d" * 20, status="working")
    for key in "abc":
        job.subtasks.create(key=key, type="research")
    page = client.get("/").content.decode()
    assert '<span class="count" id="count-working">1</span>' in page


@pytest.mark.parametrize("params", [{}, {"q": "idempotency"}, {"status": "completed"}])
def test_cards_with_subtasks_and_agents_cost_no_query_each(client, operator, params):
    make_history(len(JobStatus.values))  # one card in each column
    few = board_queries(client, params)
    make_history(80)
    assert board_queries(client, params) == few


def test_a_search_shows_the_newest_matches_of_each_column_and_how_many_there_are(client, operator):
    make_jobs(40, operator)
    for n in range(30):
        Job.objects.create(title=f"Needle {n}", description="d" * 20, status="completed")
    response = client.get("/", {"q": "needle"})
    completed = next(c for c in response.context["columns"] if c["status"] == "completed")
    assert completed["count"] == 30 and completed["more"] == 5
    assert [job.title for job in completed["jobs"]][:2] == ["Needle 29", "Needle 28"]
    assert all(c["count"] == 0 for c in response.context["columns"] if c["status"] != "completed")


def test_a_card_shows_its_progress_and_its_agents(client, operator):
    make_history(1)
    job = Job.objects.get()
    page = client.get("/").content.decode()
    names = sorted({sub.agent.name for sub in job.subtasks.all()})
    assert "1/3 subtasks" in page and f"· {', '.join(names)}" in page


def test_a_search_takes_percent_signs_and_underscores_literally(client, operator):
    Job.objects.create(title="Cut costs by 50%", description="d" * 20, status="queued")
    Job.objects.create(title="Cut costs by 500", description="d" * 20, status="queued")
    Job.objects.create(title="Rename user_id", description="d" * 20, status="queued")
    Job.objects.create(title="Rename userid", description="d" * 20, status="queued")
    for q, title in [("50%", "Cut costs by 50%"), ("user_id", "Rename user_id")]:
        queued = client.get("/", {"q": q}).context["columns"][0]
        assert [job.title for job in queued["jobs"]] == [title]


def test_an_experiment_case_names_its_experiment_on_its_card_at_no_query(client, operator):
    from agents.models import Experiment, ExperimentCase

    make_jobs(10, operator)
    few = board_queries(client)
    experiment = Experiment.objects.create(name="Prompt v2", dataset_name="Haiku")
    for position, job in enumerate(Job.objects.all()[:5], start=1):
        ExperimentCase.objects.create(
            experiment=experiment, position=position, title=job.title, job=job
        )
    assert board_queries(client) == few
    page = client.get("/").content.decode()
    assert page.count(f'href="/experiments/{experiment.pk}/"') == 5
    assert f"experiment #{experiment.pk}" in page
