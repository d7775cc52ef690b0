"""Querysets that a page and its live fragments share, defined once."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from agents.models import Agent, Job, LLMCall, Subtask
from agents.series import agent_series


def job_subtasks(job_id: int) -> QuerySet[Subtask]:
    """A job's subtasks with their agent, dependencies and call trace, in plan order."""
    return (
        Subtask.objects.filter(job_id=job_id)
        .select_related("agent", "job")
        .prefetch_related(
            Prefetch("depends_on", queryset=Subtask.objects.only("key")),
            Prefetch("calls", queryset=LLMCall.objects.order_by("pk")),
        )
        .order_by("pk")
    )


def board_jobs() -> QuerySet[Job]:
    """Jobs as their board cards show them."""
    return Job.objects.for_board()


def agents_with_metrics(agents: QuerySet[Agent]) -> list[Agent]:
    """Agents with their load and last-hour series, as the agents page shows them."""
    rows = list(agents.with_load())
    series = agent_series([a.pk for a in rows])
    for agent in rows:
        agent.series = series[agent.pk]
    return rows
