"""A plan's `assign_to` picks only an agent that may run the subtask, and the orchestrator runs
specialist work only with that specialty: not by a hint, and not as the fallback for a type
nobody has."""

import pytest

from agents import actions, dispatch
from agents.allocation import Candidate, choose, eligible
from agents.models import Agent, Job, JobStatus, Subtask, SubtaskStatus

from .cast import person

ORCHESTRATION = ("orchestration", "planning")


def agent(id: int, slug: str, *specialties: str, load: int = 0) -> Candidate:
    return Candidate(
        id=id,
        slug=slug,
        specialties=specialties,
        completed=0,
        failed=0,
        avg_latency_s=0.0,
        load=load,
        max_concurrency=2,
    )


PLANNER = agent(1, "orchestrator", *ORCHESTRATION)
RESEARCHER = agent(2, "researcher", "research")
CODER = agent(3, "coder", "coding")
TEAM = [PLANNER, RESEARCHER, CODER]


def test_a_hint_to_an_agent_without_the_specialty_is_set_aside_saying_why():
    chosen, reasons = choose("research", TEAM, hint="coder")
    assert chosen == RESEARCHER
    assert reasons["by"] == "score"
    assert reasons["hint_ignored"] == "coder does not have the research specialty"


def test_a_hint_to_the_orchestrator_is_set_aside():
    chosen, reasons = choose("research", TEAM, hint="orchestrator")
    assert chosen == RESEARCHER
    assert (
        reasons["hint_ignored"]
        == "orchestrator is the orchestrator, without the research specialty"
    )


def test_a_hint_to_an_orchestrator_with_the_specialty_is_followed():
    planner = agent(1, "orchestrator", *ORCHESTRATION, "research")
    chosen, reasons = choose("research", [planner, RESEARCHER], hint="orchestrator")
    assert chosen == planner and reasons["by"] == "hint"
    assert "hint_ignored" not in reasons


def test_a_hint_to_an_agent_that_is_not_enabled_is_set_aside():
    chosen, reasons = choose("research", TEAM, hint="translator")
    assert chosen == RESEARCHER
    assert reasons["hint_ignored"] == "translator is not an enabled agent"


def test_a_hint_to_a_full_specialist_is_set_aside_for_a_free_one():
    busy = agent(4, "busy", "research", load=2)
    chosen, reasons = choose("research", [busy, RESEARCHER], hint="busy")
    assert chosen == RESEARCHER
    assert reasons["hint_ignored"] == "busy is at its max concurrency"


def test_a_type_nobody_has_falls_back_to_every_agent_but_the_orchestrator():
    assert eligible("translation", TEAM) == [RESEARCHER, CODER]
    chosen, reasons = choose("translation", TEAM, hint="orchestrator")
    assert chosen in (RESEARCHER, CODER)
    assert "orchestrator" not in [c["agent"] for c in reasons["candidates"]]
    assert "hint_ignored" in reasons


def test_in_the_fallback_a_hint_to_any_specialist_is_followed():
    chosen, reasons = choose("translation", TEAM, hint="coder")
    assert chosen == CODER and reasons["by"] == "hint"


def test_with_only_the_orchestrator_a_type_it_lacks_has_no_candidate():
    chosen, reasons = choose("translation", [PLANNER])
    assert chosen is None
    assert reasons["candidates"] == [] and reasons["chosen"] is None


def test_the_orchestrator_runs_a_subtask_of_its_own_specialty():
    assert choose("planning", TEAM)[0] == PLANNER


# --- dispatch, with the database ------------------------------------------------------------


def working_job(*subtasks: tuple[str, str, str]) -> Job:
    job = Job.objects.create(title="t", description="d" * 20, status=JobStatus.WORKING)
    for key, kind, hint in subtasks:
        Subtask.objects.create(job=job, key=key, type=kind, assign_hint=hint)
    return job


def make(slug: str, *specialties: str, enabled: bool = True) -> Agent:
    return Agent.objects.create(
        name=slug.title(), slug=slug, specialties=list(specialties), enabled=enabled
    )


@pytest.mark.django_db
def test_dispatch_gives_a_subtask_hinted_to_the_orchestrator_to_a_specialist():
    make("orchestrator", *ORCHESTRATION)
    researcher = make("researcher", "research")
    job = working_job(("a", "research", "orchestrator"))

    assert dispatch.dispatch_ready() == 1
    sub = job.subtasks.get()
    assert sub.agent == researcher
    assert sub.allocation["hint_ignored"].startswith("orchestrator is the orchestrator")


@pytest.mark.django_db
def test_dispatch_never_falls_back_to_the_orchestrator():
    make("orchestrator", *ORCHESTRATION)
    translator = make("translator", "translation", enabled=False)
    job = working_job(("a", "poetry", ""))

    assert dispatch.dispatch_ready() == 0
    job.refresh_from_db()
    assert job.subtasks.get().status == SubtaskStatus.WAITING
    assert job.subtasks.get().agent is None
    assert job.status == JobStatus.WAITING
    assert job.status_reason == dispatch.NO_SPECIALIST

    dispatch.resume_jobs_waiting_for_agents()  # the reconciler's pass: nothing changed
    assert Job.objects.get(pk=job.pk).status == JobStatus.WAITING

    actions.set_agent_enabled(translator, True)
    assert Job.objects.get(pk=job.pk).status == JobStatus.WORKING
    assert dispatch.dispatch_ready() == 1
    assert job.subtasks.get().agent == translator  # the fallback: any specialist
    assert Job.objects.get(pk=job.pk).status_reason == ""


@pytest.mark.django_db
def test_a_job_waiting_for_a_specialty_resumes_when_the_orchestrator_is_given_it():
    planner = make("orchestrator", *ORCHESTRATION)
    job = working_job(("a", "poetry", ""))
    dispatch.dispatch_ready()
    assert Job.objects.get(pk=job.pk).status == JobStatus.WAITING

    planner.specialties = [*ORCHESTRATION, "poetry"]
    planner.save()
    dispatch.resume_jobs_waiting_for_agents()
    assert dispatch.dispatch_ready() == 1
    assert job.subtasks.get().agent == planner


@pytest.mark.django_db
def test_the_job_page_says_why_the_hint_was_set_aside(client):
    make("orchestrator", *ORCHESTRATION)
    make("researcher", "research")
    job = working_job(("a", "research", "orchestrator"))
    dispatch.dispatch_ready()
    client.force_login(person("alice"))
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Why researcher (the plan asked for orchestrator, set aside: orchestrator is the" in page


@pytest.mark.django_db
def test_the_planning_prompt_lists_an_orchestrator_that_also_has_a_specialty():
    Agent.objects.create(name="Planner", slug="orchestrator", specialties=["planning"])
    Agent.objects.create(name="Lead", slug="lead", specialties=["planning", "research"])
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])

    assert sorted(a.slug for a in Agent.objects.specialists()) == ["coder", "lead"]
