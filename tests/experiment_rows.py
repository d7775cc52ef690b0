"""Experiments written straight into the database, for the pages' tests: their cases, jobs
and scores as the engine would leave them, without running it."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from agents.models import (
    Dataset,
    Experiment,
    ExperimentCase,
    ExperimentStatus,
    Job,
    JobStatus,
    Score,
    Scorer,
)


def scorer(name: str = "Exact", threshold: float = 0.5) -> Scorer:
    made, _ = Scorer.objects.get_or_create(
        name=name,
        defaults={"slug": name.lower().replace(" ", "-"), "kind": "exact", "threshold": threshold},
    )
    return made


def experiment(
    name: str,
    values: dict[Scorer, list[float | None]],
    *,
    status: str = ExperimentStatus.COMPLETED,
    results: list[str] | None = None,
    job_statuses: list[str] | None = None,
    agent_versions: dict | None = None,
    user=None,
) -> Experiment:
    """An experiment of one case per value (position 1, 2, …), each case's job ended with
    `results[i]` (or "output i"), scored by each scorer with its value (None: not scored)."""
    dataset, _ = Dataset.objects.get_or_create(name="Outages", defaults={"slug": "outages"})
    made = Experiment.objects.create(
        name=name,
        dataset=dataset,
        dataset_name=dataset.name,
        status=status,
        agent_versions=agent_versions or {},
        created_by=user,
    )
    made.scorers.set(values)
    count = max(len(v) for v in values.values()) if values else len(results or [])
    for i in range(count):
        position = i + 1
        job_status = job_statuses[i] if job_statuses else JobStatus.COMPLETED
        ended = job_status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
        job = Job.objects.create(
            title=f"Case {position}",
            description=f"Input of case {position}",
            status=job_status,
            result=results[i] if results else f"output {position}",
            priority=9,
            total_tokens=100,
            total_cost=Decimal("0.01"),
            agent_versions=made.agent_versions,
            finished_at=timezone.now() if ended else None,
        )
        case = ExperimentCase.objects.create(
            experiment=made,
            position=position,
            title=f"Case {position}",
            description=f"Input of case {position}",
            expected=f"Expected {position}",
            job=job,
        )
        for by, scores in values.items():
            if i < len(scores) and scores[i] is not None:
                add_score(case, by, scores[i])
    return made


def add_score(case: ExperimentCase, by: Scorer, value: float) -> Score:
    return Score.objects.create(
        job=case.job,
        experiment=case.experiment,
        scorer=by,
        scorer_name=by.name,
        source=Score.Source.CODE,
        value=value,
        passed=value >= by.threshold,
        reason=f"{by.name} gave {value}",
    )


def add_score_to_job(job, name: str, value: float, *, source: str = "code", call=None) -> Score:
    """A scorer's score of a job outside any experiment (online or by hand)."""
    by = scorer(name)
    return Score.objects.create(
        job=job,
        scorer=by,
        scorer_name=name,
        source=source,
        value=value,
        passed=value >= by.threshold,
        reason=f"{name} gave {value}",
        call=call,
    )
