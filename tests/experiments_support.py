"""Datasets, scorers and experiments for the experiment engine's tests."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from agents import experiments
from agents.models import Case, Dataset, Experiment, Job, JobStatus, Scorer


def dataset(n: int = 3, slug: str = "greetings") -> Dataset:
    """A dataset of `n` cases, "Case 1" to "Case n"."""
    made = Dataset.objects.create(name=slug.title(), slug=slug)
    for i in range(1, n + 1):
        Case.objects.create(
            dataset=made,
            title=f"Case {i}",
            description=f"Say hello to person number {i}, politely.",
            expected="hello",
            notes=f"note {i}",
        )
    return made


def code_scorers() -> list[Scorer]:
    """Two scorers that need no model: output not empty, and it names the simulator."""
    return [
        Scorer.objects.get_or_create(
            slug="not-empty-e",
            defaults={
                "name": "Not empty (E)",
                "kind": Scorer.Kind.LENGTH,
                "config": {"min": 1, "max": None},
                "threshold": 1.0,
            },
        )[0],
        Scorer.objects.get_or_create(
            slug="says-simulator",
            defaults={
                "name": "Says simulator",
                "kind": Scorer.Kind.CONTAINS,
                "config": {"text": "simulator", "case_sensitive": False},
                "threshold": 0.5,
            },
        )[0],
    ]


def start(
    data: Dataset,
    user,
    *,
    scorers: list[Scorer] | None = None,
    versions: dict | None = None,
    budget_tokens: int | None = None,
    budget_cost: Decimal | None = None,
    concurrency: int = 4,
    name: str = "",
) -> Experiment:
    return experiments.start(
        dataset=data,
        name=name or f"{data.name} run",
        scorers=code_scorers() if scorers is None else scorers,
        agent_versions=versions or {},
        budget_tokens=budget_tokens,
        budget_cost=budget_cost,
        concurrency=concurrency,
        actor=user,
    )


def finish(job: Job, result: str = "Hello from the simulator.", tokens: int = 100) -> None:
    """End a case's job as a worker would have: completed with its result and spend."""
    job.transition(
        job.status,
        JobStatus.COMPLETED,
        result=result,
        total_tokens=tokens,
        finished_at=timezone.now(),
    )
