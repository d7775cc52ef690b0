"""Plan review keeps its bounds: a plan never outgrows PLAN_MAX_SUBTASKS, and a job stopped
before its plan was approved goes back to review when retried, not to work."""

import pytest
from django.utils import timezone

from agents import actions, dispatch, team
from agents.models import Job, JobStatus, SharedState, Subtask, SubtaskStatus

pytestmark = pytest.mark.django_db


def job_in_review(keys=("research", "coding")) -> Job:
    job = Job.objects.create(
        title="Reviewed",
        description="Plan first.",
        status=JobStatus.WAITING,
        review_plan=True,
        planned_at=timezone.now(),
    )
    SharedState.objects.create(job=job)
    for key in keys:
        Subtask.objects.create(job=job, key=key, type="research")
    return job


def test_an_added_subtask_cannot_grow_the_plan_past_its_limit(client, operator, settings):
    settings.PLAN_MAX_SUBTASKS = 2
    job = job_in_review()
    response = client.post(
        f"/jobs/{job.pk}/subtasks/add/",
        {"new-key": "docs", "new-type": "research", "new-description": "One too many."},
        follow=True,
    )
    # Back on the job page, saying why nothing was added.
    assert "at most 2 subtasks" in response.content.decode()
    assert job.subtasks.count() == 2
    # The action refuses too, whoever calls it.
    added = actions.add_subtask(
        job, key="docs", type="research", description="d", depends_on=[], agent=None
    )
    assert added is None and job.subtasks.count() == 2


def test_below_the_limit_a_subtask_is_added(client, operator, settings):
    settings.PLAN_MAX_SUBTASKS = 3
    job = job_in_review()
    client.post(
        f"/jobs/{job.pk}/subtasks/add/",
        {"new-key": "docs", "new-type": "research", "new-description": "Fits."},
    )
    assert set(job.subtasks.values_list("key", flat=True)) == {"research", "coding", "docs"}


def test_a_job_cancelled_in_review_goes_back_to_review_when_retried():
    team.seed()
    job = job_in_review()
    assert actions.cancel_job(job)
    assert set(job.subtasks.values_list("status", flat=True)) == {SubtaskStatus.CANCELLED}

    assert actions.retry_job(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING and job.awaiting_review
    assert "review" in job.status_reason
    assert set(job.subtasks.values_list("status", flat=True)) == {SubtaskStatus.WAITING}
    assert dispatch.dispatch_ready() == 0  # nothing reaches a specialist before approval


def test_a_job_cancelled_after_approval_resumes_its_work():
    team.seed()
    job = job_in_review()
    assert actions.approve_plan(job)
    assert actions.cancel_job(Job.objects.get(pk=job.pk))
    assert actions.retry_job(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.WORKING


def test_a_user_over_the_hourly_submission_limit_is_told_so(client, operator, settings):
    settings.JOB_SUBMISSIONS_PER_HOUR = 2
    form = {"title": "Again", "description": "Once more.", "priority": "5"}
    for _ in range(2):
        assert client.post("/jobs/submit/", form).status_code == 302
    response = client.post("/jobs/submit/", form)
    assert response.status_code == 429
    assert "2 jobs in the last hour" in response.content.decode()
    assert Job.objects.filter(submitted_by=operator).count() == 2
    # Through htmx the form comes back (200, so htmx swaps it) with the same message.
    response = client.post("/jobs/submit/", form, headers={"HX-Request": "true"})
    assert "2 jobs in the last hour" in response.content.decode()
    assert Job.objects.filter(submitted_by=operator).count() == 2
