"""A job submitted over HTTP completes through real processes: Daphne, a Celery worker on the
real broker (production mode when REDIS_URL is set), and the LLM simulator over HTTP."""

import time

import pytest

from agents.models import JobStatus, LLMCall, Subtask, SubtaskStatus
from orchestrator_site.celery import app

from .cast import PASSWORD
from .stack import finished, login, submit

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_it_completes_a_job_submitted_in_the_form(stack, seeded, django_db_blocker):
    stack.reset_simulator()
    client = login(stack.base_url, "alice", PASSWORD)
    submit(client, "E2E pipeline", "Design a rate limiter and review it.", priority="3")

    job = finished("E2E pipeline")
    assert job.status == JobStatus.COMPLETED, job.error
    with django_db_blocker.unblock():
        subtasks = list(job.subtasks.all())
        calls = list(LLMCall.objects.filter(job=job))
    assert [s.status for s in subtasks] == [SubtaskStatus.COMPLETED] * 3
    # plan + 3 subtasks + synthesis, each answered by the simulator with its token counts
    assert len(calls) == 5
    assert all(
        c.http_status == 200 and c.prompt_tokens > 0 and c.completion_tokens > 0 for c in calls
    )
    assert job.total_tokens == sum(c.prompt_tokens + c.completion_tokens for c in calls)
    assert "simulator" in job.result
    assert stack.simulator_stats()["requests"] == 5

    page = client.get(job.get_absolute_url())
    assert 'data-status="completed"' in page.text


def test_a_duplicated_run_subtask_message_does_not_call_the_llm_again(
    stack, seeded, django_db_blocker
):
    if not stack.production:
        pytest.skip("needs a broker shared between processes (REDIS_URL)")
    client = login(stack.base_url, "alice", PASSWORD)
    submit(client, "E2E duplicate", "Count to three, carefully.")
    job = finished("E2E duplicate")
    assert job.status == JobStatus.COMPLETED
    with django_db_blocker.unblock():
        sub = Subtask.objects.filter(job=job).first()
        calls_before = LLMCall.objects.filter(subtask=sub).count()
    before = stack.simulator_stats()["requests"]

    for _ in range(3):
        app.send_task("agents.tasks.run_subtask", args=[sub.pk])
    time.sleep(2)

    with django_db_blocker.unblock():
        assert LLMCall.objects.filter(subtask=sub).count() == calls_before == 1
    assert stack.simulator_stats()["requests"] == before
