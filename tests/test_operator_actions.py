"""Budget, cancel and retry, through the running stack: each shows nothing extra was called."""

import time

import pytest

from agents.models import Agent, Job, JobStatus, LLMCall, Subtask, SubtaskStatus

from .cast import PASSWORD
from .stack import finished, login, post, submit, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]
# The slow stack's calls: long enough to cancel a job while one runs.
LATENCY_MS = 1500


def successful_calls(job: Job) -> dict[str, int]:
    calls = LLMCall.objects.filter(job=job, error="")
    return {
        "plan": calls.filter(purpose="plan").count(),
        "synthesis": calls.filter(purpose="synthesis").count(),
        **{s.key: calls.filter(subtask=s).count() for s in job.subtasks.all()},
    }


def test_a_budget_too_small_for_the_next_prompt_stops_the_job_before_calling(stack, seeded):
    stack.reset_simulator()
    client = login(stack.base_url, "bob", PASSWORD)
    submit(client, "Budgeted", budget_tokens="100")

    job = finished("Budgeted")
    assert job.status == JobStatus.FAILED
    assert job.error == "budget exceeded"
    # The planning prompt alone is estimated over 100 tokens: nothing was sent to a model.
    assert LLMCall.objects.filter(job=job).count() == 0
    assert stack.simulator_stats()["requests"] == 0
    assert job.total_tokens == 0


def test_retrying_a_failed_job_reruns_only_what_failed(stack, seeded):
    Agent.objects.filter(slug="coder").update(model="unknown-model")
    client = login(stack.base_url, "bob", PASSWORD)
    submit(client, "Retry job")
    job = finished("Retry job")
    assert job.status == JobStatus.FAILED
    statuses = dict(job.subtasks.values_list("key", "status"))
    assert statuses == {"research": "completed", "coding": "failed", "review": "failed"}
    assert job.subtasks.get(key="review").error == "dependency failed"
    assert "404" in job.subtasks.get(key="coding").error  # permanent: failed at once
    assert successful_calls(job) == {
        "plan": 1,
        "synthesis": 0,
        "research": 1,
        "coding": 0,
        "review": 0,
    }

    Agent.objects.filter(slug="coder").update(model="gpt-4.1-mini")
    assert post(client, f"/jobs/{job.pk}/retry/") == 200
    job = wait_until(
        lambda: Job.objects.filter(pk=job.pk, status="completed").first(), "the retried job"
    )
    # Research was not repeated; the failed branch ran once more, then the synthesis.
    assert successful_calls(job) == {
        "plan": 1,
        "synthesis": 1,
        "research": 1,
        "coding": 1,
        "review": 1,
    }
    assert job.audit.filter(action="retry_job", actor__username="bob").exists()


def test_retrying_a_failed_subtask_runs_it_and_its_dependents(stack, seeded):
    Agent.objects.filter(slug="reviewer").update(model="unknown-model")
    client = login(stack.base_url, "bob", PASSWORD)
    submit(client, "Retry subtask")
    job = finished("Retry subtask")
    review = job.subtasks.get(key="review")
    assert review.status == SubtaskStatus.FAILED

    Agent.objects.filter(slug="reviewer").update(model="gpt-4.1-mini")
    assert post(client, f"/subtasks/{review.pk}/retry/") == 200
    job = wait_until(
        lambda: Job.objects.filter(pk=job.pk, status="completed").first(), "the retried job"
    )
    assert successful_calls(job) == {
        "plan": 1,
        "synthesis": 1,
        "research": 1,
        "coding": 1,
        "review": 1,
    }


def test_a_viewer_cannot_cancel_or_retry(stack, seeded):
    Agent.objects.filter(slug="reviewer").update(model="unknown-model")
    operator = login(stack.base_url, "bob", PASSWORD)
    submit(operator, "Viewer job")
    job = finished("Viewer job")
    viewer = login(stack.base_url, "carol", PASSWORD)
    review = job.subtasks.get(key="review")
    assert post(viewer, f"/jobs/{job.pk}/retry/") == 403
    assert post(viewer, f"/subtasks/{review.pk}/retry/") == 403
    assert post(viewer, f"/jobs/{job.pk}/cancel/") == 403
    assert post(viewer, "/jobs/submit/") == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_cancelling_lets_running_calls_finish_and_starts_nothing_new(slow_stack, seeded):
    client = login(slow_stack.base_url, "bob", PASSWORD)
    submit(client, "Cancelled")
    job = wait_until(lambda: Job.objects.filter(title="Cancelled").first(), "the job")
    wait_until(
        lambda: job.subtasks.filter(status=SubtaskStatus.WORKING).exists(), "a working subtask"
    )
    in_flight = list(job.subtasks.filter(status=SubtaskStatus.WORKING).values_list("pk", flat=True))
    # A claimed subtask sends its request a moment later: cancel once the model has it.
    wait_until(lambda: slow_stack.simulator_stats()["in_flight"] >= 1, "the call in flight")
    requests_at_cancel = slow_stack.simulator_stats()["requests"]
    assert post(client, f"/jobs/{job.pk}/cancel/") == 200

    wait_until(
        lambda: not Subtask.objects.filter(job=job, status__in=("queued", "working")).exists(),
        "calls in flight to finish",
    )
    time.sleep(1)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    statuses = dict(job.subtasks.values_list("key", "status"))
    assert statuses == {"research": "completed", "coding": "cancelled", "review": "cancelled"}
    # The running call finished and was kept; no request left for the model after the cancel.
    assert slow_stack.simulator_stats()["requests"] == requests_at_cancel
    # (Compared by subtask, not by clock: under load a call may end just before the cancel.)
    kept = LLMCall.objects.filter(subtask_id__in=in_flight, error="", response__gt="")
    assert kept.count() == len(in_flight)
    assert job.audit.filter(action="cancel").exists()
