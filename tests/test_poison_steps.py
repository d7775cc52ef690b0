"""Poison steps end: a step that crashes whoever runs it, or whose worker is lost again and
again, is taken back at most STEP_MAX_TAKEBACKS times; the next take-back fails it with the
cause, and the job ends by the ordinary rules. Before, the reconciler took it back for ever.
A tool that raises is an error result the model reads, never a crash."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from agents import leases, planning, recovery, steps, tools
from agents.models import (
    Agent,
    Job,
    JobStatus,
    SharedState,
    Subtask,
    SubtaskStatus,
    ToolCall,
)
from webhooks import tasks, transport, triggers
from webhooks.models import Delivery, DeliveryStatus, Endpoint, Outcome

from .inprocess import died_after_asking

pytestmark = pytest.mark.django_db

BOUND = 3


@pytest.fixture(autouse=True)
def bound(settings):
    settings.STEP_MAX_TAKEBACKS = BOUND


def ctx(job_id: int = 0) -> tools.Context:
    return tools.Context(job_id=job_id, author="a/s", grants=("read_state", "http_get"))


def lapse(model, pk: int) -> None:
    """Its worker is gone: the lease lapsed (as tests/test_leases.py does)."""
    model.objects.filter(pk=pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


# tools.run never raises


def test_a_tool_that_raises_type_error_is_an_error_result():
    job = Job.objects.create(title="J", description="D")
    SharedState.objects.create(job=job, data={"notes": "n"})

    outcome = tools.run("read_state", json.dumps({"key": ["a", "list"]}), ctx(job.pk))

    assert outcome.result == ""
    assert outcome.error.startswith("The tool failed: TypeError:")


def test_a_url_with_a_bad_port_is_an_error_result(settings):
    settings.TOOL_HTTP_ALLOWLIST = ["example.org"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = False  # its check read the port: ValueError

    outcome = tools.run("http_get", json.dumps({"url": "http://example.org:99999/"}), ctx())

    assert outcome.result == "" and outcome.error


def test_a_tool_error_keeps_its_message():
    outcome = tools.run("read_state", json.dumps({"key": "missing"}), ctx())
    assert outcome.error == "The shared state has no key 'missing'; keys: []."


# A subtask


def tool_agent() -> Agent:
    return Agent.objects.create(
        name="Researcher", slug="researcher", specialties=["research"], tools=["read_state"]
    )


def test_a_subtask_whose_tool_crashes_every_run_fails_within_the_bound(
    simulator, sent, monkeypatch
):
    # As tools.run did before it caught everything (read_state with a list as key): the
    # exception escapes the step at every run.
    def crash(name, arguments, context):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(tools, "run", crash)
    sub = died_after_asking(tool_agent(), "read_state", {"key": ["a"]})

    runs = 0
    while Subtask.objects.get(pk=sub.pk).status == SubtaskStatus.QUEUED:
        runs += 1
        assert runs <= BOUND + 1, "taken back past the bound"
        with pytest.raises(TypeError):
            steps.run_subtask(sub.pk)
        recovery.reconcile()  # its lease lapsed when it raised: taken back, or failed

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.FAILED
    assert runs == BOUND  # the first run came back from died_after_asking's take-back
    assert sub.takebacks == BOUND
    assert "TypeError: unhashable type: 'list'" in sub.error
    job = Job.objects.get(pk=sub.job_id)
    assert job.status == JobStatus.FAILED and job.error == "1 of 1 subtasks failed."


def test_a_subtask_whose_worker_is_lost_again_and_again_fails_after_the_bound(sent):
    agent = tool_agent()
    job = Job.objects.create(
        title="J", description="D", status=JobStatus.WORKING, planned_at=timezone.now()
    )
    sub = Subtask.objects.create(
        job=job, key="s1", type="research", agent=agent, status=SubtaskStatus.QUEUED
    )

    for _ in range(BOUND + 1):
        assert steps._claim_subtask(sub.pk) is not None  # claimed, then its worker dies
        lapse(Subtask, sub.pk)
        recovery.reconcile()

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.FAILED
    assert sub.error == f"Stopped: worker lost {BOUND + 1} times while running this step."
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_a_subtask_taken_back_fewer_times_is_queued_again(sent):
    sub = Subtask.objects.create(
        job=Job.objects.create(title="J", description="D", status=JobStatus.WORKING),
        key="s1",
        type="research",
        agent=tool_agent(),
        status=SubtaskStatus.WORKING,
        takebacks=BOUND - 1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    recovery.reconcile()
    sub.refresh_from_db()
    assert (sub.status, sub.takebacks) == (SubtaskStatus.QUEUED, BOUND)


# Planning and synthesis


def claim_planning(job: Job) -> None:
    assert job.transition(
        JobStatus.QUEUED, JobStatus.PLANNING, claimed_at=timezone.now(), **leases.claim()
    )


def test_planning_whose_worker_is_lost_again_and_again_fails_the_job(sent):
    job = Job.objects.create(title="J", description="D", status=JobStatus.QUEUED)

    for _ in range(BOUND + 1):
        claim_planning(job)
        lapse(Job, job.pk)
        recovery.reconcile()
        job.refresh_from_db()

    assert job.status == JobStatus.FAILED
    assert job.error == f"Stopped: worker lost {BOUND + 1} times while running this step."


def test_planning_that_crashes_every_run_fails_the_job_with_the_exception(
    simulator, sent, monkeypatch
):
    Agent.objects.create(name="Lead", slug="lead", specialties=["planning"])
    job = Job.objects.create(title="J", description="D", status=JobStatus.QUEUED)

    def crash(*args, **kwargs):
        raise ValueError("the plan broke the parser")

    monkeypatch.setattr(planning, "parse_plan", crash)
    for _ in range(BOUND + 1):
        with pytest.raises(ValueError):
            steps.plan_job(job.pk)
        recovery.reconcile()
        job.refresh_from_db()

    assert job.status == JobStatus.FAILED
    assert job.error.endswith("the last raised ValueError: the plan broke the parser")


def test_synthesis_whose_worker_is_lost_again_and_again_fails_the_job(sent):
    job = Job.objects.create(
        title="J", description="D", status=JobStatus.SYNTHESIZING, planned_at=timezone.now()
    )

    for _ in range(BOUND + 1):
        Job.objects.filter(pk=job.pk, claimed_at__isnull=True).update(
            claimed_at=timezone.now(), **leases.claim()
        )
        lapse(Job, job.pk)
        recovery.reconcile()
        job.refresh_from_db()

    assert job.status == JobStatus.FAILED
    assert job.error == f"Stopped: worker lost {BOUND + 1} times while running this step."


# A tool call


def test_a_tool_call_whose_worker_was_lost_too_often_is_not_run_again(simulator, sent):
    agent = tool_agent()
    sub = died_after_asking(agent, "read_state", {"key": "notes"})
    ToolCall.objects.create(
        job=sub.job,
        subtask=sub,
        llm_call=sub.calls.get(),
        agent=agent,
        call_id="call_recorded",
        name="read_state",
        arguments='{"key": "notes"}',
        attempts=BOUND + 1,  # started that often, never recorded an outcome
    )

    steps.run_subtask(sub.pk)

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.COMPLETED, sub.error  # the model read the error
    row = ToolCall.objects.get(subtask=sub)
    assert row.status == ToolCall.Status.DONE and row.result == ""
    assert row.error == (
        f"The worker running this tool was lost {BOUND + 1} times; it is not run again."
    )


def test_a_tool_call_within_the_bound_runs(simulator, sent):
    agent = tool_agent()
    sub = died_after_asking(agent, "read_state", {"key": "notes"})
    ToolCall.objects.create(
        job=sub.job,
        subtask=sub,
        llm_call=sub.calls.get(),
        agent=agent,
        call_id="call_recorded",
        name="read_state",
        arguments='{"key": "notes"}',
        attempts=BOUND,
    )

    steps.run_subtask(sub.pk)

    row = ToolCall.objects.get(subtask=sub)
    assert (row.result, row.error, row.attempts) == ('"the cache is warm"', "", BOUND + 1)


# A webhook delivery


def test_a_delivery_whose_attempt_crashes_every_time_gives_up_with_the_cause(settings, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_BASE_S = 0.01
    settings.WEBHOOK_MAX_ATTEMPTS = 20

    def crash(*args, **kwargs):
        raise RuntimeError("the transport broke")

    monkeypatch.setattr(transport, "post", crash)
    Endpoint.objects.create(url="http://127.0.0.1:9/hook", events=["job.completed"])
    job = Job.objects.create(title="J", description="D", status=JobStatus.COMPLETED)
    [delivery_id] = triggers.create_deliveries("job", job.pk, JobStatus.COMPLETED, "k1")

    tasks.deliver.apply(args=(delivery_id, 1))  # its retries applied at once

    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.FAILED
    log = list(delivery.attempt_log.all())
    assert len(log) == BOUND + 1
    assert [a.outcome for a in log] == [Outcome.FAILED] * BOUND + [Outcome.GAVE_UP]
    assert log[-1].error.startswith("The attempt raised RuntimeError: the transport broke")
    assert delivery.last_error == log[-1].error
