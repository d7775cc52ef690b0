"""The state machines' discipline: every status or claim change is one conditional UPDATE,
and a move announces only the rows it changed."""

import importlib

import pytest
from django.apps import apps

from agents import dispatch
from agents.models import Job, JobStatus, WaitingFor

pytestmark = pytest.mark.django_db

fill_migration = importlib.import_module("agents.migrations.0016_job_waiting_for")


def job(status: str = JobStatus.WORKING, **fields) -> Job:
    return Job.objects.create(title="t", description="d", status=status, **fields)


# Waiting reasons


def test_existing_waiting_jobs_get_their_code_from_their_sentence():
    no_agent = job(JobStatus.WAITING, status_reason=dispatch.NO_AGENT)
    no_specialist = job(JobStatus.WAITING, status_reason=dispatch.NO_SPECIALIST)
    unplanned = job(
        JobStatus.WAITING,
        status_reason="Waiting for an enabled orchestrator agent to plan this job.",
    )
    reviewed = job(
        JobStatus.WAITING,
        review_plan=True,
        planned_at="2026-01-01T00:00:00Z",
        status_reason="The plan awaits an operator's review. notes",
    )
    working = job(JobStatus.WORKING, status_reason=dispatch.NO_AGENT)

    fill_migration.fill_waiting_for(apps, None)

    codes = dict(Job.objects.values_list("pk", "waiting_for"))
    assert codes == {
        no_agent.pk: WaitingFor.AGENT,
        no_specialist.pk: WaitingFor.SPECIALIST,
        unplanned.pk: WaitingFor.ORCHESTRATOR,
        reviewed.pk: WaitingFor.REVIEW,
        working.pk: "",
    }


def test_a_job_that_stops_waiting_waits_for_nothing():
    waiting = job(JobStatus.WAITING, waiting_for=WaitingFor.AGENT)
    moved = job(JobStatus.WAITING, waiting_for=WaitingFor.SPECIALIST)

    assert waiting.transition(JobStatus.WAITING, JobStatus.CANCELLED)
    Job.objects.filter(pk=moved.pk).move(JobStatus.WAITING, JobStatus.WORKING)

    waiting.refresh_from_db()
    assert waiting.waiting_for == ""
    assert Job.objects.get(pk=moved.pk).waiting_for == ""
