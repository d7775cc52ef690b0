"""Jobs through the API: submit, list as the board filters, read, cancel, retry, review."""

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from agents.models import Agent, AuditEntry, Job, JobStatus, Subtask, SubtaskStatus

from .api_support import PROBLEM, make_job, planned_job

pytestmark = pytest.mark.django_db

NEW_JOB = {"title": "Compare queues", "description": "Celery or RQ for a small team?"}


def test_an_operator_submits_a_job(operator_api, users):
    body = {**NEW_JOB, "priority": 2, "budget_tokens": 5000, "budget_cost": "0.5"}
    response = operator_api.post("/api/v1/jobs", {**body, "review_plan": True})
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert response["Location"] == f"http://testserver/api/v1/jobs/{job.pk}"
    data = response.json()
    assert data["id"] == job.pk and data["status"] == "queued"
    assert data["submitted_by"] == "bob"
    assert (data["priority"], data["budget_tokens"], data["budget_cost"]) == (2, 5000, "0.5000")
    assert data["review_plan"] is True and data["subtasks"] == []
    assert (job.submitted_by, job.priority, job.review_plan) == (users["operator"], 2, True)
    assert AuditEntry.objects.filter(job=job, action="submit", actor=users["operator"]).exists()


def test_a_job_takes_the_defaults_the_form_has(operator_api):
    data = operator_api.post("/api/v1/jobs", NEW_JOB).json()
    assert (data["priority"], data["review_plan"], data["budget_cost"]) == (5, False, None)


def test_the_boards_rules_apply_to_a_submitted_job(operator_api):
    response = operator_api.post("/api/v1/jobs", {"title": "   ", "description": "too short"})
    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 422 and problem["instance"] == "/api/v1/jobs"
    assert problem["type"] == "http://testserver/api/v1/problems/validation"
    errors = {e["pointer"]: e["detail"] for e in problem["errors"]}
    assert errors == {
        "#/title": "This field is required.",  # the form strips it, as on the board
        "#/description": "Describe the job in at least 10 characters.",
    }
    assert not Job.objects.exists()


def test_types_are_checked_before_the_rules(operator_api):
    response = operator_api.post("/api/v1/jobs", {**NEW_JOB, "priority": 12, "budget_cost": "x"})
    assert response.status_code == 422
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {"#/priority", "#/budget_cost"}


def test_a_body_that_is_not_json_is_a_400(operator_api):
    response = operator_api.generic(
        "POST", "/api/v1/jobs", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["title"] == "Bad Request"


def test_over_the_submission_limit_is_a_429_with_retry_after(operator_api, users, settings):
    settings.JOB_SUBMISSIONS_PER_HOUR = 2
    for minutes_ago in (50, 10):
        job = make_job(submitted_by=users["operator"])
        Job.objects.filter(pk=job.pk).update(
            created_at=timezone.now() - timedelta(minutes=minutes_ago)
        )
    response = operator_api.post("/api/v1/jobs", NEW_JOB)
    assert response.status_code == 429
    assert response["Content-Type"] == PROBLEM
    assert 9 * 60 <= int(response["Retry-After"]) <= 10 * 60  # the older one leaves in 10 min
    assert "JOB_SUBMISSIONS_PER_HOUR" in response.json()["detail"]
    assert response.json()["type"].endswith("/api/v1/problems/submission-limit")
    assert Job.objects.count() == 2


def test_the_list_filters_as_the_board_does(operator_api, users):
    make_job(JobStatus.FAILED, title="Translate the manual", priority=1)
    make_job(JobStatus.WORKING, title="Summarise", description="The manual, in brief.")
    make_job(JobStatus.WORKING, title="Unrelated", submitted_by=users["operator"])

    def titles(**query) -> list[str]:
        response = operator_api.get("/api/v1/jobs", query)
        assert response.status_code == 200
        return [job["title"] for job in response.json()["results"]]

    assert titles() == ["Unrelated", "Summarise", "Translate the manual"]
    assert titles(q="MANUAL") == ["Summarise", "Translate the manual"]
    assert titles(status="working", q="manual") == ["Summarise"]
    assert titles(priority=1) == ["Translate the manual"]
    assert titles(submitter="bob") == ["Unrelated"]


def test_a_bad_filter_is_a_422_naming_the_parameter(operator_api):
    response = operator_api.get("/api/v1/jobs", {"status": "sleeping", "priority": "high"})
    assert response.status_code == 422
    assert {e["parameter"] for e in response.json()["errors"]} == {"status", "priority"}


def test_the_list_pages_with_a_cursor(operator_api):
    for n in range(7):
        make_job(title=f"job {n}")
    seen, url, pages = [], "/api/v1/jobs?limit=3", 0
    while url:
        page = operator_api.get(url).json()
        seen += [job["title"] for job in page["results"]]
        url, pages = page["next"], pages + 1
    assert pages == 3
    assert seen == [f"job {n}" for n in reversed(range(7))]
    # A job submitted meanwhile does not shift the pages already handed out.
    first = operator_api.get("/api/v1/jobs?limit=3").json()
    make_job(title="newer")
    second = operator_api.get(first["next"]).json()
    assert [job["title"] for job in second["results"]] == ["job 3", "job 2", "job 1"]
    cursor = parse_qs(urlparse(first["next"]).query)["cursor"][0]
    assert base64.b64decode(cursor)  # opaque, but a cursor rather than a page number


@pytest.mark.parametrize(
    "cursor",
    ["a", base64.b64encode(b"p=not-a-date").decode(), base64.b64encode(b"o=x").decode()],
)
def test_a_cursor_that_is_not_one_is_a_422(operator_api, cursor):
    make_job()
    response = operator_api.get("/api/v1/jobs", {"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "cursor"


def test_a_job_reads_with_its_plan_allocation_and_cost(operator_api):
    job = planned_job()
    response = operator_api.get(f"/api/v1/jobs/{job.pk}")
    assert response.status_code == 200
    data = response.json()
    assert data["description"] == job.description
    assert (data["subtasks_done"], data["subtasks_total"], data["agents"]) == (1, 2, ["Coder"])
    draft, check = data["subtasks"]
    assert draft["key"] == "draft" and draft["agent"] == "coder"
    assert draft["allocation"]["chosen"] == "coder" and draft["allocation"]["by"] == "score"
    assert draft["allocation"]["candidates"][0]["score"] == 99.95
    assert (draft["tokens"], draft["cost"], draft["result"]) == (120, "0.001200", "Waves.")
    assert check["depends_on"] == ["draft"] and check["agent"] is None
    assert check["allocation"] == {}
    assert data["controls"] == ["cancel"]
    assert data["page"] == f"http://testserver/jobs/{job.pk}/"


def test_an_unknown_job_is_a_404_problem(operator_api):
    response = operator_api.get("/api/v1/jobs/999")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json()["detail"] == "No job 999."


def test_cancel_then_cancel_again_is_a_409(operator_api):
    job = planned_job()
    response = operator_api.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["controls"] == ["retry"]
    again = operator_api.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert again.status_code == 409
    assert again["Content-Type"] == PROBLEM
    assert again.json()["detail"] == f"Job #{job.pk} is cancelled: there is nothing to cancel."
    assert again.json()["type"].endswith("/api/v1/problems/conflict")


def test_retry_resumes_a_failed_job_and_refuses_a_working_one(operator_api):
    working = planned_job()
    assert operator_api.post(f"/api/v1/jobs/{working.pk}/retry").status_code == 409
    failed = planned_job(JobStatus.FAILED)
    Subtask.objects.filter(job=failed, key="check").update(status=SubtaskStatus.FAILED)
    response = operator_api.post(f"/api/v1/jobs/{failed.pk}/retry")
    assert response.status_code == 200
    assert response.json()["status"] == "working"
    assert AuditEntry.objects.filter(job=failed, action="retry_job").exists()


def test_a_failed_subtask_is_retried(operator_api):
    job = planned_job(JobStatus.FAILED)
    check = job.subtasks.get(key="check")
    check.status = SubtaskStatus.FAILED
    check.save()
    response = operator_api.post(f"/api/v1/subtasks/{check.pk}/retry")
    assert response.status_code == 200
    assert response.json()["status"] in ("waiting", "queued")
    assert response.json()["retry_count"] == 0
    completed = job.subtasks.get(key="draft")
    refused = operator_api.post(f"/api/v1/subtasks/{completed.pk}/retry")
    assert refused.status_code == 409
    assert "cannot be retried now" in refused.json()["detail"]


def test_a_subtask_reads_alone(operator_api):
    draft = planned_job().subtasks.get(key="draft")
    data = operator_api.get(f"/api/v1/subtasks/{draft.pk}").json()
    assert (data["key"], data["job"], data["agent"]) == ("draft", draft.job_id, "coder")


@pytest.fixture
def in_review() -> Job:
    job = planned_job(JobStatus.WAITING, review=True)
    Agent.objects.create(name="Researcher", slug="researcher", specialties=["research"])
    return job


def test_a_plan_under_review_is_edited(operator_api, in_review):
    draft = in_review.subtasks.get(key="draft")
    response = operator_api.patch(
        f"/api/v1/subtasks/{draft.pk}", {"description": "Draft it twice", "agent": "researcher"}
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["description"], data["type"], data["assign_hint"]) == (
        "Draft it twice",
        "coding",
        "researcher",
    )
    cleared = operator_api.patch(
        f"/api/v1/subtasks/{draft.pk}", {"agent": None, "type": "Research"}
    )
    assert (cleared.json()["assign_hint"], cleared.json()["type"]) == ("", "research")


def test_an_edit_names_an_enabled_agent(operator_api, in_review):
    draft = in_review.subtasks.get(key="draft")
    response = operator_api.patch(f"/api/v1/subtasks/{draft.pk}", {"agent": "nobody-here"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/agent"


def test_a_subtask_is_added_and_deleted_under_review(operator_api, in_review):
    response = operator_api.post(
        f"/api/v1/jobs/{in_review.pk}/subtasks",
        {"key": "Polish It", "type": "review", "description": "Polish", "depends_on": ["check"]},
    )
    assert response.status_code == 201, response.content
    added = response.json()
    assert (added["key"], added["depends_on"]) == ("polish-it", ["check"])
    duplicate = operator_api.post(
        f"/api/v1/jobs/{in_review.pk}/subtasks",
        {"key": "polish-it", "type": "review", "description": "Again"},
    )
    assert duplicate.status_code == 422
    assert duplicate.json()["errors"][0]["pointer"] == "#/key"
    assert operator_api.delete(f"/api/v1/subtasks/{added['id']}").status_code == 204
    assert not in_review.subtasks.filter(key="polish-it").exists()


def test_a_full_plan_refuses_another_subtask(operator_api, in_review, settings):
    settings.PLAN_MAX_SUBTASKS = 2
    response = operator_api.post(
        f"/api/v1/jobs/{in_review.pk}/subtasks",
        {"key": "more", "type": "review", "description": "One too many"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#"


def test_approval_sends_the_plan_to_work(operator_api, in_review):
    response = operator_api.post(f"/api/v1/jobs/{in_review.pk}/approve")
    assert response.status_code == 200
    assert response.json()["status"] == "working"
    assert in_review.state.versions.get().data["pending_tasks"][0]["id"] == "draft"
    again = operator_api.post(f"/api/v1/jobs/{in_review.pk}/approve")
    assert again.status_code == 409
    assert "not awaiting review" in again.json()["detail"]


def test_a_plan_not_under_review_cannot_change(operator_api):
    job = planned_job()
    draft = job.subtasks.get(key="draft")
    for response in (
        operator_api.patch(f"/api/v1/subtasks/{draft.pk}", {"description": "Changed"}),
        operator_api.delete(f"/api/v1/subtasks/{draft.pk}"),
        operator_api.post(
            f"/api/v1/jobs/{job.pk}/subtasks", {"key": "x", "type": "review", "description": "x"}
        ),
        operator_api.post(f"/api/v1/jobs/{job.pk}/approve"),
    ):
        assert response.status_code == 409, response.content
    draft.refresh_from_db()
    assert draft.description == "Draft it"


def test_a_jobs_detail_takes_the_same_few_queries_however_large_its_plan(
    operator_api, django_assert_max_num_queries
):
    job = planned_job()
    for n in range(10):
        job.subtasks.create(key=f"extra-{n}", type="review", result="r" * 5000)
    with django_assert_max_num_queries(13):  # 12, and the tool calls of the newest calls
        data = operator_api.get(f"/api/v1/jobs/{job.pk}").json()
    assert len(data["subtasks"]) == 12 and data["subtasks"][-1]["result"] == "r" * 5000


def test_why_picked_carries_the_quality_term_when_there_is_one(operator_api):
    job = planned_job()
    draft = job.subtasks.get(key="draft")
    terms = {"quality": 0.9, "quality_n": 12, "quality_term": 12.5, "prior": False}
    draft.allocation["candidates"][0].update(terms)
    draft.save(update_fields=["allocation"])
    data = operator_api.get(f"/api/v1/jobs/{job.pk}").json()
    candidate = data["subtasks"][0]["allocation"]["candidates"][0]
    assert {key: candidate[key] for key in terms} == terms
