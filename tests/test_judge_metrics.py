"""A judge's call is counted in the job it scored, and in no agent's metrics: it has no agent
row, and announcing a change of agent None broke the live window's sort (a judge's call and
an agent's change in one window could not be published)."""

import pytest

from agents import events, scoring
from agents.models import Agent, Job, JobStatus, Scorer

pytestmark = pytest.mark.django_db


def test_a_judge_call_changes_no_agent_and_the_window_still_publishes(
    settings, django_capture_on_commit_callbacks
):
    settings.LLM_API_KEY = ""  # the offline model
    agent = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    job = Job.objects.create(
        title="T", description="D", status=JobStatus.COMPLETED, result="An answer."
    )
    judge = Scorer.objects.create(name="Judge", slug="judge", kind="judge", config={})
    events._take()
    with django_capture_on_commit_callbacks(execute=True):
        scoring.score_job(job, judge)
        events.agent_changed(agent.pk)
    window = events._take()
    assert window.agents == {agent.pk}
    assert f'"agents": [{agent.pk}]' in window.to_json()
    agent.refresh_from_db()
    assert (agent.completed_count, agent.total_tokens) == (0, 0)
    job.refresh_from_db()
    assert job.total_tokens > 0  # the judge's tokens, counted where it was asked
