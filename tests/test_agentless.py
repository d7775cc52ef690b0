"""With no enabled agent at all, a job waits with a visible reason and resumes on enable."""

import pytest

from agents import actions, dispatch
from agents.models import Agent, Job, JobStatus, Subtask, SubtaskStatus, WaitingFor

pytestmark = pytest.mark.django_db


def working_job() -> Job:
    job = Job.objects.create(title="t", description="d", status=JobStatus.WORKING)
    Subtask.objects.create(job=job, key="a", type="research")
    return job


def test_it_says_why_a_job_waits_when_no_agent_is_enabled():
    Agent.objects.create(name="R", slug="r", specialties=["research"], enabled=False)
    job = working_job()

    assert dispatch.dispatch_ready() == 0
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    assert job.status_reason == dispatch.NO_AGENT
    assert job.waiting_for == WaitingFor.AGENT
    assert job.subtasks.get().status == SubtaskStatus.WAITING


def test_it_resumes_when_an_agent_is_enabled(django_capture_on_commit_callbacks):
    agent = Agent.objects.create(name="R", slug="r", specialties=["research"], enabled=False)
    job = working_job()
    dispatch.dispatch_ready()
    assert Job.objects.get(pk=job.pk).status == JobStatus.WAITING

    with django_capture_on_commit_callbacks() as callbacks:
        actions.set_agent_enabled(agent, True)
    assert callbacks, "enabling an agent asks for a dispatch pass"
    assert dispatch.dispatch_ready() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.WORKING
    assert job.status_reason == ""
    assert job.waiting_for == ""
    assert job.subtasks.get().agent == agent
    assert job.audit.count() == 0 and agent.audit.get().action == "enable_agent"


def test_what_resumes_a_waiting_job_is_its_code_not_its_sentence():
    agent = Agent.objects.create(name="R", slug="r", specialties=["research"], enabled=False)
    job = working_job()
    dispatch.dispatch_ready()
    Job.objects.filter(pk=job.pk).update(status_reason="Reworded for operators.")

    actions.set_agent_enabled(agent, True)
    dispatch.dispatch_ready()
    job.refresh_from_db()
    assert job.status == JobStatus.WORKING
    assert job.waiting_for == ""
