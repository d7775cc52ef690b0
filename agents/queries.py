"""The reads every face shares, defined once: the board's cards and filters, a job's
subtasks and activity, a subtask's trace, agents with their metrics, spend."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Length, Substr

from .models import (
    Agent,
    Approval,
    AuditEntry,
    Job,
    LLMCall,
    Subtask,
    ToolCall,
    count_of,
)
from .series import agent_series
from .tools import RESULT_CHARS

JOB_TEXTS = ("description", "result", "error")  # a subtask reads its job's status alone
AGENT_TEXTS = ("system_prompt", "specialties", "tools")  # a call shows its agent's name


# A job page lists every subtask: each shows the start of its result and its newest calls
# (without their texts); the whole of both is on the subtask's own page.
RESULT_PREVIEW = 600
TRACE_SHOWN = 3
TRACE_PAGE = 10
# Characters of a tool call's arguments and result a job page shows (its subtask's page, all).
TOOL_PREVIEW = 160
TOOL_WHOLE = RESULT_CHARS  # all a tool call's result keeps
# What an awaiting subtask shows (templates/dashboard/_approval.html).
PENDING_APPROVALS = Approval.objects.filter(decision="").select_related("tool_call").order_by("-pk")


def job_subtasks(job_id: int) -> QuerySet[Subtask]:
    """A job's subtasks as its page lists them, in plan order: agent, dependencies, newest
    calls with their agents and tool calls, `result_head` and `result_chars`. A few queries whatever
    their number."""
    newest_calls = (
        LLMCall.objects.select_related("agent")  # its name labels the call's version
        .defer("messages", "response", *(f"agent__{f}" for f in AGENT_TEXTS))
        .prefetch_related(Prefetch("tool_runs", queryset=tool_calls(TOOL_PREVIEW)))
        .order_by("-pk")
    )
    return (
        Subtask.objects.filter(job_id=job_id)
        .select_related("agent", "job")
        .defer("result", "agent__system_prompt", *(f"job__{f}" for f in JOB_TEXTS))
        .annotate(
            result_head=Substr("result", 1, RESULT_PREVIEW),
            result_chars=Length("result"),
            calls_total=count_of(LLMCall.objects.filter(subtask=OuterRef("pk"))),
        )
        .prefetch_related(
            Prefetch("depends_on", queryset=Subtask.objects.only("key", "status")),
            Prefetch("calls", queryset=newest_calls[:TRACE_SHOWN], to_attr="newest_calls"),
            Prefetch("approvals", queryset=PENDING_APPROVALS, to_attr="pending_approvals"),
        )
        .order_by("pk")
    )


def job_activity(job_id: int) -> list[AuditEntry]:
    """A job page's Activity: its newest 50 audit entries, one query."""
    return list(AuditEntry.objects.filter(job_id=job_id).select_related("actor", "subtask")[:50])


def subtask_calls(sub: Subtask) -> QuerySet[LLMCall]:
    """A subtask's whole call trace, newest first, as its page pages through it."""
    tools = Prefetch("tool_runs", queryset=tool_calls(TOOL_WHOLE))
    return sub.calls.select_related("agent").prefetch_related(tools).order_by("-pk")


def tool_calls(chars: int) -> QuerySet[ToolCall]:
    """Tool calls as a trace shows them: `arguments_head` and `result_head`, their first
    `chars` characters and one more (the template marks a cut)."""
    return ToolCall.objects.defer("arguments", "result").annotate(
        arguments_head=Substr("arguments", 1, chars + 1),
        result_head=Substr("result", 1, chars + 1),
    )


# A card names the template or the schedule its job came from: joined, not read per card.
CARD_ORIGIN = ("template", "schedule_run__schedule")
ORIGIN_UNUSED = ("template__description", "template__agent_versions")


def board_jobs() -> QuerySet[Job]:
    """Jobs as their board cards show them."""
    return Job.objects.for_board().select_related(*CARD_ORIGIN).defer(*ORIGIN_UNUSED)


def agents_with_metrics(agents: QuerySet[Agent]) -> list[Agent]:
    """Agents with their load and last-hour series, as the agents page shows them."""
    rows = list(agents.with_load())
    series = agent_series([a.pk for a in rows])
    for agent in rows:
        agent.series = series[agent.pk]
    return rows


def spend(calls: QuerySet[LLMCall], by: str) -> QuerySet:
    """Calls, failures, tokens and cost of `calls` per value of `by` (a field or lookup)."""
    return (
        calls.values(by)
        .annotate(
            calls=Count("id"),
            failed_calls=Count("id", filter=~Q(error="")),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        .order_by(by)
    )
