"""What an operator can cancel, retry or review: one set of properties, and the views agree."""

import pytest
from django.utils import timezone

from agents.models import AuditEntry, Job, JobStatus, SharedState, Subtask, SubtaskStatus

CANCELLABLE = {"queued", "planning", "waiting", "working", "synthesizing"}
RETRYABLE = {"failed", "cancelled"}


@pytest.mark.parametrize("status", JobStatus.values)
def test_a_job_can_be_cancelled_until_it_ends(status):
    assert Job(status=status).can_cancel == (status in CANCELLABLE)


@pytest.mark.parametrize("status", JobStatus.values)
def test_only_a_failed_or_cancelled_job_can_be_retried(status):
    assert Job(status=status).can_retry == (status in RETRYABLE)


@pytest.mark.parametrize("status", JobStatus.values)
def test_only_a_planned_job_stopped_for_review_awaits_it(status):
    planned = timezone.now()
    assert Job(status=status, review_plan=True, planned_at=planned).awaiting_review == (
        status == "waiting"
    )
    assert not Job(status=status, review_plan=False, planned_at=planned).awaiting_review
    # Waiting with no plan yet: for an orchestrator, not for an operator.
    assert not Job(status=status, review_plan=True, planned_at=None).awaiting_review


def test_controls_name_the_actions_that_apply():
    assert Job(status="working").controls == ["cancel"]
    assert Job(status="failed").controls == ["retry"]
    assert Job(status="cancelled").controls == ["retry"]
    assert Job(status="completed").controls == []
    reviewed = Job(status="waiting", review_plan=True, planned_at=timezone.now())
    assert reviewed.controls == ["cancel", "review"]


@pytest.mark.parametrize("sub_status", SubtaskStatus.values)
@pytest.mark.parametrize("job_status", JobStatus.values)
def test_a_failed_or_cancelled_subtask_can_be_retried_until_its_job_completes(
    job_status, sub_status
):
    sub = Subtask(job=Job(status=job_status, planned_at=timezone.now()), status=sub_status)
    assert sub.can_retry == (sub_status in RETRYABLE and job_status != "completed")


def test_a_subtask_of_an_unplanned_job_cannot_be_retried():
    assert not Subtask(job=Job(status="failed", planned_at=None), status="failed").can_retry


def make_job(status: str, *, review_plan: bool = False) -> Job:
    """A planned job with one completed and one failed subtask."""
    job = Job.objects.create(
        title=f"A {status} job",
        description="d" * 20,
        status=status,
        review_plan=review_plan,
        planned_at=timezone.now(),
    )
    SharedState.objects.create(job=job)
    job.subtasks.create(key="research", type="research", status="completed")
    job.subtasks.create(key="coding", type="coding", status="failed", error="HTTP 404")
    return job


def done(job: Job, action: str) -> bool:
    return AuditEntry.objects.filter(job=job, action=action).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("status", JobStatus.values)
def test_the_job_page_draws_the_controls_the_properties_allow(client, operator, status):
    job = make_job(status, review_plan=True)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'data-controls="{" ".join(job.controls)}"' in page
    assert ("Cancel job" in page) == job.can_cancel
    assert ("Retry job" in page) == job.can_retry
    assert ("Approve the plan" in page) == job.awaiting_review
    coding = job.subtasks.get(key="coding")
    assert ("Retry coding" in page) == coding.can_retry
    assert "Retry research" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("status", JobStatus.values)
def test_the_cancel_view_refuses_what_can_cancel_refuses(client, operator, status):
    job = make_job(status)
    allowed = job.can_cancel
    response = client.post(f"/jobs/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert done(job, "cancel") == allowed
    assert job.status == (JobStatus.CANCELLED if allowed else status)
    if not allowed:
        assert "nothing to cancel" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("status", JobStatus.values)
def test_the_retry_view_refuses_what_can_retry_refuses(client, operator, status):
    job = make_job(status)
    allowed = job.can_retry
    response = client.post(f"/jobs/{job.pk}/retry/", follow=True)
    job.refresh_from_db()
    assert done(job, "retry_job") == allowed
    assert (job.status == status) != allowed
    if not allowed:
        assert "only a failed or cancelled job resumes" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("status", JobStatus.values)
def test_the_subtask_retry_view_refuses_what_can_retry_refuses(client, operator, status):
    coding = make_job(status).subtasks.get(key="coding")
    allowed = coding.can_retry
    response = client.post(f"/subtasks/{coding.pk}/retry/", follow=True)
    coding.refresh_from_db()
    assert done(coding.job, "retry_subtask") == allowed
    assert coding.status == (SubtaskStatus.WAITING if allowed else SubtaskStatus.FAILED)
    if not allowed:
        assert "cannot be retried now" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("status", JobStatus.values)
def test_the_review_views_refuse_what_awaiting_review_refuses(client, operator, status):
    job = make_job(status, review_plan=True)
    allowed = job.awaiting_review
    coding = job.subtasks.get(key="coding")
    prefix = f"s{coding.pk}"
    edit = {f"{prefix}-description": "Write it in Go.", f"{prefix}-type": "coding"}
    client.post(f"/subtasks/{coding.pk}/edit/", edit)
    assert done(job, "edit_subtask") == allowed
    client.post(f"/jobs/{job.pk}/approve/")
    assert done(job, "approve_plan") == allowed
