"""A case's job ending advances its experiment (the job-end hook, the reconciler's pass),
and a job's end costs no query when no experiment runs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import experiments
from agents.events import Announcement
from agents.models import ExperimentStatus, JobStatus

from .api_support import make_job
from .cast import person
from .experiments_support import dataset, start

ADVANCE = "agents.tasks.advance_experiment"


def _ended(job_id: int, status: str = JobStatus.COMPLETED) -> Announcement:
    return Announcement("job.status", job_id, {"job_id": job_id, "status": status})


@pytest.fixture(autouse=True)
def fresh_cache():
    experiments._running.forget()
    yield
    experiments._running.forget()


@pytest.mark.django_db
def test_a_case_jobs_end_advances_its_experiment(sent_tasks):
    experiment = start(dataset(2), person("bob"))
    job = experiment.cases.get(position=1).job
    other = make_job(JobStatus.COMPLETED)
    sent_tasks.clear()

    experiments.on_announcements([_ended(other.pk), _ended(job.pk)])
    assert sent_tasks == [(ADVANCE, (experiment.pk,))]

    sent_tasks.clear()  # a move that is not an end is no concern
    experiments.on_announcements([_ended(job.pk, JobStatus.WORKING)])
    assert sent_tasks == []


@pytest.mark.django_db
def test_job_ends_cost_no_query_while_no_experiment_runs(sent_tasks):
    job = make_job(JobStatus.COMPLETED)
    experiments.on_announcements([_ended(job.pk)])  # it looks once...
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            experiments.on_announcements([_ended(job.pk)])  # ...and then trusts it a while
    assert len(queries) == 0
    assert sent_tasks == []


@pytest.mark.django_db
def test_a_reconciler_pass_advances_the_running_experiments_that_wait_for_it(sent_tasks):
    running = start(dataset(2), person("bob"), concurrency=1)
    ended = start(dataset(1, slug="other"), person("bob"))
    ended.status = ExperimentStatus.COMPLETED
    ended.save()
    sent_tasks.clear()

    assert experiments.sweep() == 0  # its one case at a time runs: nothing to do
    assert sent_tasks == []

    job = running.cases.get(position=1).job
    job.transition(job.status, JobStatus.COMPLETED)
    # Its end was not seen (its process died before its hooks ran): this pass makes up for it.
    assert experiments.sweep() == 1
    assert sent_tasks == [(ADVANCE, (running.pk,))]
