"""Controls on the job page are drawn per user: a viewer's page has none at all."""

import pytest

from agents.models import Job, SharedState

from .cast import user_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_job() -> Job:
    job = Job.objects.create(title="broken", description="d" * 20, status="failed")
    job.planned_at = job.created_at
    job.save()
    SharedState.objects.create(job=job)
    job.subtasks.create(key="research", type="research", status="completed")
    job.subtasks.create(key="coding", type="coding", status="failed", error="HTTP 404")
    return job


def page_for(client, role: str, job: Job) -> str:
    client.force_login(user_in(role))
    return client.get(f"/jobs/{job.pk}/").content.decode()


def test_an_operator_gets_retry_controls(client, failed_job):
    page = page_for(client, "Operators", failed_job)
    assert "Retry coding" in page
    assert "Retry research" not in page  # completed work is not offered again
    assert "Retry job" in page


def test_a_viewer_gets_no_controls(client, failed_job):
    page = page_for(client, "Viewers", failed_job)
    for control in ("Retry coding", "Retry job", "Cancel job", "Approve the plan", "/subtasks/"):
        assert control not in page


def test_an_experiments_case_says_why_its_priority_is_below_the_operators(client):
    from agents.models import EXPERIMENT_PRIORITY

    client.force_login(user_in("Viewers"))
    case = Job.objects.create(title="Case 1", description="d" * 20, priority=EXPERIMENT_PRIORITY)
    SharedState.objects.create(job=case)
    live = Job.objects.create(title="Live", description="d" * 20, priority=9)
    SharedState.objects.create(job=live)
    assert "below all live work" in client.get(f"/jobs/{case.pk}/").content.decode()
    assert "below all live work" not in client.get(f"/jobs/{live.pk}/").content.decode()
