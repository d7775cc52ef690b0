"""A subtask whose agent has tools: the model asks for tool calls, Baton runs them and asks
again, until the model answers in text.

Every model call goes through `calls.call_llm` (the job's budget is checked before each, and
each is an LLMCall row) and every tool call the model asks for is a ToolCall row. The
records are the loop's checkpoint: a later attempt (its worker died) or the run that follows
an operator's decision picks the conversation up from them instead of paying again. A tool
may then run a second time if its worker died between running it and recording the result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import approvals, calls, events, telemetry, tools
from .models import Agent, LLMCall, Subtask, ToolCall
from .text import clean_json

Prompt = Callable[[Subtask], list[dict]]

STEP_CAP = (
    "The model still asked for tools after {calls}, the cap of agent {agent} "
    "(max_tool_steps). Raise it on the agent's page and retry this subtask: it goes on from "
    "its recorded calls."
)
UNFINISHED = (ToolCall.Status.REQUESTED, ToolCall.Status.APPROVED)
LOST = "The worker running this tool was lost {lost} times; it is not run again."


class StepCapReached(Exception):
    """The model used up the agent's `max_tool_steps` and still asked for tools."""


def run(sub: Subtask, prompt: Prompt) -> LLMCall | None:
    """The subtask's final answer (a call with no tool calls), or None when it is now paused
    awaiting an operator's approval. Raises what `calls.call_llm` raises, and StepCapReached."""
    agent = sub.agent
    grants = tuple(agent.tools)
    context = tools.Context(job_id=sub.job_id, author=f"{agent.slug}/{sub.key}", grants=grants)
    asked = None
    if sub.attempts > 1:  # an earlier run may have got some of the way, paid for
        asked = _asked_before(sub)
        later = sub.calls.all()
        if asked is not None:
            _count(sub, asked)
            later = later.filter(pk__gt=asked.pk)
        final = calls.adopt_recorded(later)
        if final is not None:
            return final  # its worker died after the provider answered
    if asked is None:
        messages = approvals.gate(sub, prompt(sub))
        if messages is None:
            return None
    offered = tools.schemas(grants)
    while True:
        if asked is not None:
            steps = model_calls(asked.messages) + 1
            if steps >= agent.max_tool_steps:
                _tool_calls_of(sub, asked)  # on record (and run, should the cap be raised)
                made = f"{steps} model call{'s' if steps > 1 else ''}"
                raise StepCapReached(STEP_CAP.format(calls=made, agent=agent.slug))
            messages = _answer_tools(sub, asked, context)
            if messages is None:
                return None
        answer = calls.call_llm(
            agent=agent,
            job_id=sub.job_id,
            subtask_id=sub.pk,
            purpose=LLMCall.Purpose.SUBTASK,
            messages=messages,
            budgeted=sub.job.has_budget,
            tools=offered,
        )
        if not answer.tool_calls:
            return answer
        _count(sub, answer)
        asked = answer


def model_calls(messages: list[dict]) -> int:
    """The model calls a conversation holds: its assistant turns that asked for tools."""
    return sum(1 for m in messages if m.get("role") == "assistant" and m.get("tool_calls"))


def _asked_before(sub: Subtask) -> LLMCall | None:
    """The newest model call of an earlier run of the subtask that asked for tools: where
    that run stopped (or the one before its final answer)."""
    return sub.calls.filter(error="").exclude(tool_calls=[]).order_by("-pk").first()


def _count(sub: Subtask, call: LLMCall) -> None:
    """A call that asked for tools counts on the subtask, the job and the agent once, by
    whichever attempt gets here first (marked COUNTED, it is never adopted as an answer)."""

    def count() -> bool:
        with transaction.atomic():
            mine = LLMCall.objects.filter(pk=call.pk, adopted__lt=LLMCall.Reuse.COUNTED)
            if not mine.update(adopted=LLMCall.Reuse.COUNTED):
                return False
            calls.add_usage(sub.job_id, call.total_tokens, call.cost)
            Subtask.objects.filter(pk=sub.pk).update(
                tokens=F("tokens") + call.total_tokens, cost=F("cost") + call.cost
            )
            events.subtask_changed(sub.pk, sub.job_id)
            return True

    if calls.db_retry(count) and call.agent_id:
        Agent.objects.filter(pk=call.agent_id).update(
            total_tokens=F("total_tokens") + call.total_tokens,
            total_cost=F("total_cost") + call.cost,
        )
        events.agent_changed(call.agent_id)


def _tool_calls_of(sub: Subtask, call: LLMCall) -> list[ToolCall]:
    """The ToolCall rows of a call's `tool_calls`, in its order: recorded now if they are
    not yet (the first time, or its worker died before it recorded them)."""
    rows = list(call.tool_runs.order_by("pk"))
    if rows:
        return rows
    ToolCall.objects.bulk_create(
        ToolCall(
            job_id=sub.job_id,
            subtask=sub,
            llm_call=call,
            agent_id=call.agent_id,
            call_id=str(asked.get("id", ""))[:100],
            name=str(asked["function"]["name"])[:200],
            arguments=asked["function"].get("arguments") or "",
        )
        for asked in call.tool_calls
    )
    events.subtask_changed(sub.pk, sub.job_id)
    return list(call.tool_runs.order_by("pk"))


def _answer_tools(sub: Subtask, call: LLMCall, context: tools.Context) -> list[dict] | None:
    """The conversation that follows `call`: its messages, the model's turn, one tool message
    per tool call. None when a tool call now waits for an operator's approval."""
    messages = [
        *call.messages,
        {"role": "assistant", "content": call.response or None, "tool_calls": call.tool_calls},
    ]
    for row in _tool_calls_of(sub, call):
        if row.status in (ToolCall.Status.REQUESTED, ToolCall.Status.AWAITING_APPROVAL):
            # Awaiting still: queued again (a retry) before its operator decided.
            reason = approvals.tool_needs_approval(tools.grant_of(row.name, context.grants))
            if reason or row.status == ToolCall.Status.AWAITING_APPROVAL:
                _ask_approval(sub, row, reason or "awaiting approval")
                return None
        if row.status in UNFINISHED:
            _run_tool(sub, row, context)
        messages.append({"role": "tool", "tool_call_id": row.call_id, "content": _content(row)})
    return messages


def _ask_approval(sub: Subtask, row: ToolCall, reason: str) -> None:
    try:
        proposed = clean_json(json.loads(row.arguments or "{}"))  # stored as jsonb
    except ValueError:
        proposed = row.arguments  # shown as the model wrote it
    approvals.request(sub, proposed=proposed, why=reason, tool_call=row)


def _run_tool(sub: Subtask, row: ToolCall, context: tools.Context) -> None:
    started_ns = time.time_ns()
    # Each run is counted before it starts: runs that never recorded an outcome lost their
    # worker, and past STEP_MAX_TAKEBACKS of them the tool is not run again.
    lost = row.attempts
    calls.db_retry(lambda: ToolCall.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1))
    row.attempts = lost + 1
    if lost > settings.STEP_MAX_TAKEBACKS:
        error = LOST.format(lost=lost)
        outcome = tools.Outcome(result="", error=error, latency_s=0.0)
    else:
        outcome = tools.run(row.name, row.arguments, context)
    telemetry.tool_called(row.name, row.call_id, started_ns, outcome.error)
    done = {
        "result": outcome.result,
        "error": outcome.error,
        "latency_s": outcome.latency_s,
        "finished_at": timezone.now(),
    }
    if not calls.db_retry(lambda: row.transition(UNFINISHED, ToolCall.Status.DONE, **done)):
        row.refresh_from_db()  # recorded by another attempt meanwhile: the model reads that
    events.subtask_changed(sub.pk, sub.job_id)


def _content(row: ToolCall) -> str:
    """What the model reads of a tool call: its result, or what went wrong, in words."""
    if row.status == ToolCall.Status.REJECTED:
        return row.error or "An operator rejected this call."  # with their reason
    if row.error:
        return f"Error: {row.error}"
    return row.result
