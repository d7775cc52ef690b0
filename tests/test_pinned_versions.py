"""A job may run an agent as it was at a chosen version (an experiment's or a re-run's):
its steps ask with that version's prompt and record its number; the agent keeps its own."""

import pytest

from agents import actions, versions
from agents.models import Agent, Job, JobStatus, LLMCall, SharedState, Subtask
from agents.rerun import RerunRefused, rerun_from

from .api_support import PROBLEM, token_client
from .cast import person
from .inprocess import deliver, run_job, simulated_llm, team_on_a_model_of_its_own

pytestmark = pytest.mark.django_db


def coder_prompts(job: Job) -> list[str]:
    calls = LLMCall.objects.filter(job=job, purpose="subtask", agent__slug="coder")
    return [call.messages[0]["content"] for call in calls]


def test_pinned_is_the_agent_as_it_was_and_cannot_be_saved():
    agent = Agent.objects.create(name="Reviewer", slug="reviewer", system_prompt="One.")
    actions.edit_agent(agent, {"system_prompt": "Two.", "temperature": 0.1})
    agent.refresh_from_db()
    past = versions.pinned(agent, {"reviewer": 1})
    assert (past.system_prompt, past.temperature, past.version) == ("One.", 0.7, 1)
    assert (agent.system_prompt, agent.version) == ("Two.", 2)
    with pytest.raises(ValueError):
        past.save()
    # Not chosen, the current version, or a version that does not exist: the agent itself.
    assert versions.pinned(agent, {}) is agent
    assert versions.pinned(agent, {"reviewer": 2}) is agent
    assert versions.pinned(agent, {"reviewer": 9}) is agent
    assert versions.pinned(agent, {"coder": 1}) is agent


def test_a_job_with_a_pinned_version_runs_it(
    settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    team_on_a_model_of_its_own(monkeypatch)
    coder = Agent.objects.get(slug="coder")
    actions.edit_agent(coder, {"system_prompt": "Write tidy code."})  # v2
    actions.edit_agent(coder, {"system_prompt": "Write tidier code."})  # v3
    job = Job.objects.create(
        title="Pinned", description="About queues.", agent_versions={"coder": 2}
    )
    SharedState.objects.create(job=job)
    with simulated_llm(settings):
        sent.append(("plan_job", (job.pk,)))
        deliver(sent, django_capture_on_commit_callbacks)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert set(coder_prompts(job)) == {"Write tidy code."}
    assert set(Subtask.objects.filter(job=job).values_list("agent_version", flat=True)) == {2}
    assert set(
        LLMCall.objects.filter(job=job, agent=coder).values_list("agent_version", flat=True)
    ) == {2}
    coder.refresh_from_db()
    assert (coder.system_prompt, coder.version) == ("Write tidier code.", 3)


def test_a_rerun_may_pick_the_version_of_the_steps_agent(
    settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    team_on_a_model_of_its_own(monkeypatch)
    coder = Agent.objects.get(slug="coder")
    actions.edit_agent(coder, {"system_prompt": "Write tidy code."})  # v2
    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)
        assert job.status == JobStatus.COMPLETED, job.error
        step = job.subtasks.get(key="review")
        with django_capture_on_commit_callbacks(execute=True):
            again = rerun_from(step, person("bob"), version=1)
        deliver(sent, django_capture_on_commit_callbacks)
    again.refresh_from_db()
    assert again.status == JobStatus.COMPLETED, again.error
    assert again.agent_versions == {"coder": 1}
    assert again.subtasks.get(key="review").agent_version == 1
    assert coder_prompts(again)[-1] != "Write tidy code."  # v1 had no prompt of its own
    entry = again.audit.get(action="job.rerun")
    assert "version: coder v1" in entry.detail


def test_a_version_the_agent_never_had_is_refused(
    settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    team_on_a_model_of_its_own(monkeypatch)
    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)
    before = Job.objects.count()
    with pytest.raises(RerunRefused, match="coder has no version 7: its versions run from 1 to 1"):
        rerun_from(job.subtasks.get(key="review"), person("bob"), version=7)
    assert Job.objects.count() == before


def test_the_api_and_the_page_take_a_version(
    settings, sent, monkeypatch, django_capture_on_commit_callbacks, users, client
):
    team_on_a_model_of_its_own(monkeypatch)
    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)
    step = job.subtasks.get(key="review")
    api = token_client(users["operator"])
    refused = api.post(f"/api/v1/subtasks/{step.pk}/rerun", {"version": 5}, format="json")
    assert refused.status_code == 409
    assert refused["Content-Type"] == PROBLEM
    assert "no version 5" in refused.json()["detail"]
    made = api.post(f"/api/v1/subtasks/{step.pk}/rerun", {"version": 1}, format="json")
    assert made.status_code == 201, made.content
    assert Job.objects.get(pk=made.json()["id"]).agent_versions == {"coder": 1}

    client.force_login(users["operator"])
    page = client.get(f"/subtasks/{step.pk}/rerun/")
    assert "has versions 1 to 1" in page.content.decode()
    bad = client.post(
        f"/subtasks/{step.pk}/rerun/", {"description": step.description, "version": "0"}
    )
    assert bad.status_code == 400
