"""A tool loop through real processes: a Celery worker runs the researcher's read_state call
between two calls to the simulator over HTTP, and the job page shows it in the trace."""

import pytest

from agents.models import JOB_TERMINAL, Agent, Job, JobStatus, LLMCall, ToolCall

from .cast import PASSWORD
from .stack import login, submit, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_a_researcher_with_a_tool_reads_the_state_before_it_answers(
    stack, seeded, django_db_blocker
):
    with django_db_blocker.unblock():
        Agent.objects.filter(slug="researcher").update(tools=["read_state"])
    stack.reset_simulator()
    client = login(stack.base_url, "alice", PASSWORD)
    submit(client, "Tool loop", "Find out what the team knows, then write it up.")

    job = wait_until(
        lambda: Job.objects.filter(title="Tool loop", status__in=JOB_TERMINAL).first(),
        "the job to end",
    )
    assert job.status == JobStatus.COMPLETED, job.error
    with django_db_blocker.unblock():
        research = job.subtasks.get(key="research")
        asked, answered = LLMCall.objects.filter(subtask=research).order_by("pk")
        tool_call = ToolCall.objects.get(subtask=research)
        calls = list(LLMCall.objects.filter(job=job))
    assert tool_call.llm_call_id == asked.pk and tool_call.status == ToolCall.Status.DONE
    assert "pending_tasks" in tool_call.result  # the plan's, in the shared state
    assert answered.messages[-1]["tool_call_id"] == tool_call.call_id
    # plan, research twice, coding, review, synthesis; each counted once
    assert stack.simulator_stats()["requests"] == len(calls) == 6
    assert stack.simulator_stats()["tool_calls"] == 1
    assert job.total_tokens == sum(c.prompt_tokens + c.completion_tokens for c in calls)

    page = client.get(job.get_absolute_url()).text
    assert f'id="tool-call-{tool_call.pk}"' in page and "<code>read_state</code>" in page
