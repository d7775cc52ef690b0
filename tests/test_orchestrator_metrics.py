"""The orchestrator's planning and synthesis count in its metrics, failures included."""

import pytest

from agents import steps
from agents.models import Agent, Job, JobStatus, SharedState

pytestmark = pytest.mark.django_db


def test_a_planning_step_that_fails_for_good_counts_as_a_failure(simulator):
    # The simulator answers models named unknown-* with a 404: a permanent error.
    orchestrator = Agent.objects.create(
        name="Orchestrator", slug="orchestrator", specialties=["planning"], model="unknown-x"
    )
    job = Job.objects.create(title="J", description="Plan it.", status=JobStatus.QUEUED)
    SharedState.objects.create(job=job)

    steps.plan_job(job.pk)

    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    orchestrator.refresh_from_db()
    assert (orchestrator.completed_count, orchestrator.failed_count) == (0, 1)
