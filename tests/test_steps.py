"""The steps (agents/steps.py): planning, running a subtask and synthesising. A planning step
that fails for good fails its job and counts against the orchestrator; an answer already paid
for, by a worker that died before finishing, is finished from instead of being asked for
again, and counted once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents import offline, planning, steps
from agents.models import Agent, Job, JobStatus, LLMCall, SharedState, Subtask, SubtaskStatus

from .inprocess import ELSEWHERE, reconcile, working_subtask

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


def test_a_recorded_answer_is_finished_from_without_paying_again(
    simulator, sent, django_capture_on_commit_callbacks
):
    sub = working_subtask(started_ago_s=20, lease_in_s=-1)
    # The dead worker's call was answered and recorded; the worker died before finishing.
    paid = LLMCall.objects.create(
        agent=sub.agent,
        job=sub.job,
        subtask=sub,
        purpose=LLMCall.Purpose.SUBTASK,
        model=sub.agent.model,
        response="the answer already paid for",
        prompt_tokens=30,
        completion_tokens=12,
        http_status=200,
        cost=Decimal("0.01"),
    )

    reconcile(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        steps.run_subtask(sub.pk)

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.COMPLETED
    assert sub.result == "the answer already paid for"
    assert simulator.stats.snapshot()["requests"] == 0
    assert LLMCall.objects.filter(subtask=sub).count() == 1
    job = Job.objects.get(pk=sub.job_id)
    assert (job.total_tokens, job.total_cost) == (42, Decimal("0.01"))  # counted once
    assert (sub.tokens, sub.cost) == (42, Decimal("0.01"))
    paid.refresh_from_db()
    assert paid.adopted == LLMCall.Reuse.ADOPTED


def rerun_with_recorded_answer(adopted: int, attempts: int, ctx) -> Subtask:
    """A subtask whose worker died after its answer was recorded (and `adopted` so far),
    taken back by the reconciler and run again."""
    sub = working_subtask(started_ago_s=20, lease_in_s=-1)
    Subtask.objects.filter(pk=sub.pk).update(attempts=attempts)
    LLMCall.objects.create(
        agent=sub.agent,
        job=sub.job,
        subtask=sub,
        purpose=LLMCall.Purpose.SUBTASK,
        model=sub.agent.model,
        response=f"recorded, {LLMCall.Reuse(adopted).label.lower()}",
        http_status=200,
        adopted=adopted,
    )
    reconcile(ctx)
    with ctx(execute=True):
        steps.run_subtask(sub.pk)
    return Subtask.objects.get(pk=sub.pk)


def test_an_answer_adopted_by_an_attempt_that_died_too_is_adopted_again(
    simulator, sent, django_capture_on_commit_callbacks
):
    sub = rerun_with_recorded_answer(LLMCall.Reuse.ADOPTED, 2, django_capture_on_commit_callbacks)

    assert simulator.stats.snapshot()["requests"] == 0
    assert sub.result == "recorded, adopted by a later attempt"


def test_an_answer_its_own_attempt_counted_after_losing_the_step_is_not_reused(
    simulator, sent, django_capture_on_commit_callbacks
):
    rerun_with_recorded_answer(LLMCall.Reuse.COUNTED, 1, django_capture_on_commit_callbacks)

    assert simulator.stats.snapshot()["requests"] == 1


def test_a_recorded_plan_is_written_without_asking_again(
    simulator, sent, django_capture_on_commit_callbacks
):
    Agent.objects.create(name="Orchestrator", slug="orchestrator", specialties=["planning"])
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding", "research"])
    job = Job.objects.create(
        title="Plan me",
        description="A job whose planner died after the answer.",
        status=JobStatus.PLANNING,
        claimed_at=timezone.now() - timedelta(seconds=30),
        lease_owner=ELSEWHERE,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    SharedState.objects.create(job=job)
    messages = planning.decomposition_messages(job.title, job.description, [], 12)
    LLMCall.objects.create(
        job=job,
        purpose=LLMCall.Purpose.PLAN,
        model="m",
        response=offline.respond(messages),
        http_status=200,
    )

    reconcile(django_capture_on_commit_callbacks)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    with django_capture_on_commit_callbacks(execute=True):
        steps.plan_job(job.pk)

    job.refresh_from_db()
    assert job.planned_at is not None
    assert job.subtasks.count() == 3
    # The thread that wrote the plan went on with its subtasks: those calls only.
    assert job.calls.filter(purpose=LLMCall.Purpose.PLAN).count() == 1
    assert simulator.stats.snapshot()["requests"] == job.calls.exclude(purpose="plan").count()


def test_a_recorded_synthesis_is_finished_from_without_paying_again(
    simulator, django_capture_on_commit_callbacks
):
    """A worker died after the provider answered its synthesis (recorded): the synthesis
    taken again finishes from that answer."""
    orchestrator = Agent.objects.create(
        name="Orchestrator", slug="orchestrator", specialties=["planning"]
    )
    finished = timezone.now() - timedelta(seconds=30)
    job = Job.objects.create(
        title="J",
        description="Do it.",
        status=JobStatus.SYNTHESIZING,
        lease_owner="gone:1:1",  # a worker held the synthesis before; its claim was taken back
        planned_at=finished,
    )
    SharedState.objects.create(job=job)
    Subtask.objects.create(
        job=job,
        key="s1",
        type="coding",
        status=SubtaskStatus.COMPLETED,
        result="done",
        finished_at=finished,
    )
    paid = LLMCall.objects.create(
        agent=orchestrator,
        job=job,
        purpose=LLMCall.Purpose.SYNTHESIS,
        model=orchestrator.model,
        response="the synthesis already paid for",
        prompt_tokens=20,
        completion_tokens=5,
        http_status=200,
    )

    with django_capture_on_commit_callbacks(execute=True):
        steps.synthesize_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.COMPLETED, "the synthesis already paid for")
    assert simulator.stats.snapshot()["requests"] == 0
    paid.refresh_from_db()
    assert paid.adopted == LLMCall.Reuse.ADOPTED
