"""The tool loop: an agent with tools calls them through the simulator's `tool_calls`, reads
their results (or their errors) and answers; the step cap ends it; every call is paid for
once, counted once, and a later attempt goes on from the records."""

import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from agents import actions, approvals, calls, models, steps, telemetry
from agents.models import (
    Agent,
    JobStatus,
    LLMCall,
    ModelPrice,
    SharedState,
    Subtask,
    SubtaskStatus,
    ToolCall,
)

from .cast import person
from .inprocess import died_after_asking, queued_subtask
from .otlp_collector import attributes

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(monkeypatch) -> str:
    """A priced model no other process uses (metrics are shared by this checkout)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    ModelPrice.objects.create(
        model=name, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00")
    )
    monkeypatch.setattr(models._price_cache, "_read_at", float("-inf"))
    return name


def agent_with(model: str, tools: list[str], **fields) -> Agent:
    return Agent.objects.create(
        name="Researcher",
        slug="researcher",
        specialties=["research"],
        model=model,
        tools=tools,
        **fields,
    )


def run(sub: Subtask, ctx) -> Subtask:
    with ctx(execute=True):
        steps.run_subtask(sub.pk)
    return Subtask.objects.select_related("job").get(pk=sub.pk)


def calls_of(sub: Subtask) -> list[LLMCall]:
    return list(LLMCall.objects.filter(subtask=sub).order_by("pk"))


def test_a_tool_result_reaches_the_model_and_the_subtask_completes(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    sub = run(queued_subtask(agent_with(model, ["read_state"])), django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    asked, answered = calls_of(sub)
    assert [c["function"]["name"] for c in asked.tool_calls] == ["read_state"]
    assert answered.tool_calls == []
    (tool_call,) = ToolCall.objects.filter(subtask=sub)
    assert tool_call.status == ToolCall.Status.DONE and tool_call.llm_call_id == asked.pk
    assert json.loads(tool_call.result)["notes"] == "the cache is warm"
    assert tool_call.error == "" and tool_call.latency_s is not None and tool_call.finished_at
    # The second call sent the model's turn and the tool's answer after the prompt.
    assistant, tool_message = answered.messages[-2:]
    assert assistant["tool_calls"] == asked.tool_calls
    assert tool_message == {
        "role": "tool",
        "tool_call_id": asked.tool_calls[0]["id"],
        "content": tool_call.result,
    }
    assert "the cache is warm" in sub.result  # the simulator quotes the tool's answer
    assert simulator.stats.snapshot()["requests"] == 2
    assert simulator.stats.snapshot()["tool_calls"] == 1


def test_every_call_counts_on_the_subtask_the_job_and_the_agent(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    sub = run(queued_subtask(agent_with(model, ["read_state"])), django_capture_on_commit_callbacks)

    calls = calls_of(sub)
    assert len(calls) == 2 and all(c.cost > 0 for c in calls)
    tokens = sum(c.total_tokens for c in calls)
    cost = sum(c.cost for c in calls)
    assert (sub.tokens, sub.cost) == (tokens, cost)
    assert (sub.job.total_tokens, sub.job.total_cost) == (tokens, cost)
    agent = Agent.objects.get(slug="researcher")
    assert (agent.total_tokens, agent.total_cost) == (tokens, cost)
    assert agent.completed_count == 1


def test_a_failing_tool_is_an_error_result_and_the_subtask_still_completes(
    simulator, sent, model, settings, django_capture_on_commit_callbacks
):
    settings.TOOL_HTTP_ALLOWLIST = ["example.org"]
    sub = run(queued_subtask(agent_with(model, ["http_get"])), django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    (tool_call,) = ToolCall.objects.filter(subtask=sub)
    assert tool_call.status == ToolCall.Status.DONE
    assert tool_call.result == "" and "http://" in tool_call.error  # "simulated" is no URL
    answered = calls_of(sub)[-1]
    assert answered.messages[-1]["content"] == f"Error: {tool_call.error}"
    assert "Error:" in sub.result


def test_a_host_off_the_allowlist_is_refused_to_the_model(
    simulator, sent, model, settings, django_capture_on_commit_callbacks
):
    settings.TOOL_HTTP_ALLOWLIST = ["example.org"]
    sub = died_after_asking(
        agent_with(model, ["http_get"]), "http_get", {"url": "https://internal.example.com/"}
    )

    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    (tool_call,) = ToolCall.objects.filter(subtask=sub)
    assert "internal.example.com is not among the hosts" in tool_call.error
    assert "not among the hosts" in calls_of(sub)[-1].messages[-1]["content"]


def test_a_loop_that_reaches_the_cap_fails_with_a_clear_error_and_no_retry(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    agent = agent_with(model, ["read_state"], max_tool_steps=1)
    sub = run(queued_subtask(agent), django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.FAILED
    assert "after 1 model call," in sub.error and "max_tool_steps" in sub.error
    assert "Raise it on the agent's page" in sub.error
    assert sub.retry_count == 0 and not any(name == "dispatch_ready" for name, _ in sent)
    assert sub.job.status == JobStatus.FAILED
    assert simulator.stats.snapshot()["requests"] == 1
    # What it asked for is on record, not run; the call counts all the same.
    (tool_call,) = ToolCall.objects.filter(subtask=sub)
    assert tool_call.status == ToolCall.Status.REQUESTED
    assert sub.tokens == calls_of(sub)[0].total_tokens > 0


def test_a_retry_after_raising_the_cap_goes_on_from_the_records(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    agent = agent_with(model, ["read_state"], max_tool_steps=1)
    sub = run(queued_subtask(agent), django_capture_on_commit_callbacks)
    Agent.objects.filter(pk=agent.pk).update(max_tool_steps=2)

    with django_capture_on_commit_callbacks(execute=True):
        assert actions.retry_subtask(sub)
    Subtask.objects.filter(pk=sub.pk).update(status=SubtaskStatus.QUEUED)  # as dispatch does
    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    assert simulator.stats.snapshot()["requests"] == 2  # the first call was not made again
    assert ToolCall.objects.get(subtask=sub).status == ToolCall.Status.DONE
    assert sub.tokens == sum(c.total_tokens for c in calls_of(sub))


def test_budgets_apply_to_every_call_of_the_loop(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    agent = agent_with(model, ["read_state"])
    first = run(queued_subtask(agent), django_capture_on_commit_callbacks)
    first_call = calls_of(first)[0]
    # Room for the same first call, not for a second one.
    sub = queued_subtask(agent, budget_tokens=first_call.total_tokens + 1)

    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.CANCELLED and "budget exceeded" in sub.error
    assert sub.job.status == JobStatus.FAILED
    assert len(calls_of(sub)) == 1
    assert sub.job.total_tokens == first_call.total_tokens


def test_an_agent_without_tools_offers_none_and_makes_one_call(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    sub = run(queued_subtask(agent_with(model, [])), django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED
    (call,) = calls_of(sub)
    assert call.tool_calls == []
    # The simulator answers any request that offers tools with a tool call.
    assert simulator.stats.snapshot()["tool_calls"] == 0
    assert not ToolCall.objects.exists()


# Resuming: a worker died mid-loop; the reconciler takes the subtask back.


def test_a_later_attempt_goes_on_from_the_recorded_call_without_paying_again(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    sub = died_after_asking(
        agent_with(model, ["read_state"]), "read_state", {"key": "notes"}, text="Let me look."
    )

    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    assert simulator.stats.snapshot()["requests"] == 1  # only the answer after the tool
    recorded, answered = calls_of(sub)
    (tool_call,) = ToolCall.objects.filter(subtask=sub)
    assert (tool_call.call_id, tool_call.llm_call_id) == ("call_recorded", recorded.pk)
    assert tool_call.result == '"the cache is warm"'
    assert answered.messages[-1]["tool_call_id"] == "call_recorded"
    assert answered.messages[-2]["content"] == "Let me look."
    # The recorded call counts once, with the new one; it was never taken for the answer.
    recorded.refresh_from_db()
    assert recorded.adopted == LLMCall.Reuse.COUNTED
    assert sub.result == answered.response != "Let me look."
    assert sub.tokens == 42 + answered.total_tokens
    assert sub.job.total_cost == Decimal("0.01") + answered.cost


def test_a_tool_call_already_run_is_not_run_again(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    agent = agent_with(model, ["write_state"])
    sub = died_after_asking(agent, "write_state", {"key": "draft", "value": 1})
    recorded = calls_of(sub)[0]
    ToolCall.objects.create(
        job=sub.job,
        subtask=sub,
        llm_call=recorded,
        agent=agent,
        call_id="call_recorded",
        name="write_state",
        arguments='{"key": "draft", "value": 1}',
        status=ToolCall.Status.DONE,
        result="Written: the shared state is now at version 2.",
        latency_s=0.01,
        finished_at=timezone.now(),
    )

    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    assert SharedState.objects.get(job=sub.job).version == 2  # the result's write only
    assert calls_of(sub)[-1].messages[-1]["content"].startswith("Written: the shared state")


def test_a_final_answer_paid_after_the_tools_is_adopted(
    simulator, sent, model, django_capture_on_commit_callbacks
):
    sub = died_after_asking(agent_with(model, ["read_state"]), "read_state", {})
    recorded = calls_of(sub)[0]
    LLMCall.objects.create(
        agent=sub.agent,
        job=sub.job,
        subtask=sub,
        purpose=LLMCall.Purpose.SUBTASK,
        model=model,
        messages=recorded.messages,
        response="the answer already paid for",
        prompt_tokens=50,
        completion_tokens=8,
        http_status=200,
    )

    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED
    assert sub.result == "the answer already paid for"
    assert simulator.stats.snapshot()["requests"] == 0
    assert sub.tokens == 42 + 58


def test_an_answer_that_asked_for_tools_is_never_adopted_as_a_final_answer(model):
    sub = died_after_asking(agent_with(model, []), "read_state", {}, text="Let me look.")

    assert calls.adopt_recorded(LLMCall.objects.filter(subtask=sub)) is None


# Tools that need an operator's approval (agents.approvals)


@pytest.fixture
def read_state_needs_approval():
    approvals._rules.forget()
    approvals.add_rule("tool", "read_state")
    yield
    approvals._rules.forget()


def paused_on_read_state(model: str, ctx) -> tuple[Subtask, ToolCall]:
    sub = run(queued_subtask(agent_with(model, ["read_state"])), ctx)
    assert sub.status == SubtaskStatus.AWAITING_APPROVAL, sub.error
    tool_call = ToolCall.objects.get(subtask=sub)
    assert tool_call.status == ToolCall.Status.AWAITING_APPROVAL and tool_call.result == ""
    assert tool_call.approval.why == "tool read_state needs approval"
    return sub, tool_call


def test_a_tool_call_waits_for_approval_and_runs_with_the_edited_arguments(
    simulator, sent, model, read_state_needs_approval, django_capture_on_commit_callbacks
):
    operator = person("bob")
    sub, tool_call = paused_on_read_state(model, django_capture_on_commit_callbacks)
    assert simulator.stats.snapshot()["requests"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(tool_call.approval, operator, "edit", edited={"key": "notes"})
    assert ("run_subtask", (sub.pk,)) in sent
    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    tool_call.refresh_from_db()
    assert tool_call.status == ToolCall.Status.DONE
    assert json.loads(tool_call.arguments) == {"key": "notes"}
    assert tool_call.result == '"the cache is warm"'
    assert simulator.stats.snapshot()["requests"] == 2  # the paused call was not made again


def test_a_rejected_tool_call_gives_the_model_the_operators_reason(
    simulator, sent, model, read_state_needs_approval, django_capture_on_commit_callbacks
):
    operator = person("bob")
    sub, tool_call = paused_on_read_state(model, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(tool_call.approval, operator, "reject", feedback="Not the notes.")
    sub = run(sub, django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    tool_call.refresh_from_db()
    assert tool_call.status == ToolCall.Status.REJECTED and tool_call.result == ""
    told = calls_of(sub)[-1].messages[-1]
    assert told["role"] == "tool" and "Not the notes." in told["content"]
    assert "rejected" in told["content"]


def test_each_tool_call_is_a_genai_span_in_its_subtasks_step(
    request, simulator, sent, model, settings, django_capture_on_commit_callbacks
):
    received = request.getfixturevalue("collector")
    settings.TOOL_HTTP_ALLOWLIST = []
    agent = agent_with(model, ["read_state", "http_get"])
    sub = died_after_asking(agent, "http_get", {"url": "https://example.org/"})
    sub = run(sub, django_capture_on_commit_callbacks)
    assert sub.status == SubtaskStatus.COMPLETED
    assert telemetry.flush_traces()

    spans = {span.span_id: span for _, span in received.spans()}
    (tool,) = [s for s in spans.values() if s.name == "execute_tool http_get"]
    attrs = attributes(tool.attributes)
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert (attrs["gen_ai.tool.name"], attrs["gen_ai.tool.call.id"]) == (
        "http_get",
        "call_recorded",
    )
    assert attrs["error.type"] == "tool_error"
    assert spans[tool.parent_span_id].name == "baton.subtask"
