"""Experiments through real processes: the case jobs run on a Celery worker against the LLM
simulator, and the worker advances the experiment as they end (its job-end hook and its
reconciler's passes), scores them, stops it at its budget and finishes it."""

from __future__ import annotations

import time

import pytest

from agents import actions, experiment_reports
from agents.actions.experiments import start_experiment
from agents.models import (
    EXPERIMENT_PRIORITY,
    JOB_TERMINAL,
    Experiment,
    ExperimentStatus,
    Job,
    JobStatus,
    Score,
)

from .experiments_support import code_scorers, dataset
from .stack import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def _ended(experiment: Experiment, timeout: float = 120) -> Experiment:
    return wait_until(
        lambda: (
            Experiment.objects.exclude(status=ExperimentStatus.RUNNING)
            .filter(pk=experiment.pk)
            .first()
        ),
        f"experiment {experiment.name} to end",
        timeout=timeout,
        poll_s=0.2,
    )


def _unfinished(experiment: Experiment) -> int:
    open_jobs = [s for s in JobStatus.values if s not in JOB_TERMINAL]
    return Job.objects.filter(experiment_case__experiment=experiment, status__in=open_jobs).count()


def test_a_three_case_experiment_runs_to_completed_with_scores(stack, seeded):
    bob = seeded["bob"]
    data = dataset(3, slug="stack-greetings")
    scorers = code_scorers()
    experiment = start_experiment(
        user=bob,
        name="Greetings on coder v1",
        dataset=data,
        scorers=scorers,
        versions={"coder": 1},
        concurrency=2,
    )
    # Editing the dataset while it runs changes nothing in it.
    data.cases.filter(title="Case 1").update(title="Renamed meanwhile")
    data.cases.create(title="Case 4", description="Added after the experiment started.")

    most = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        most = max(most, _unfinished(experiment))
        if not Experiment.objects.filter(pk=experiment.pk, status="running").exists():
            break
        time.sleep(0.1)
    experiment = _ended(experiment, timeout=1)

    assert experiment.status == ExperimentStatus.COMPLETED, experiment.status_reason
    assert 1 <= most <= 2  # never more case jobs unfinished than its concurrency
    cases = list(experiment.cases.select_related("job").order_by("position"))
    assert [c.title for c in cases] == ["Case 1", "Case 2", "Case 3"]
    jobs = [c.job for c in cases]
    assert all(j.status == JobStatus.COMPLETED for j in jobs), [j.error for j in jobs]
    assert {j.priority for j in jobs} == {EXPERIMENT_PRIORITY}
    assert all(j.agent_versions == {"coder": 1} for j in jobs)
    assert all(c.scored_at is not None and c.scoring_error == "" for c in cases)
    assert Score.objects.filter(experiment=experiment).count() == 3 * len(scorers)

    summary = experiment_reports.summary(experiment)
    assert (summary["total"], summary["done"], summary["scored"], summary["failed"]) == (3, 3, 3, 0)
    by_name = {row["name"]: row for row in summary["scorers"]}
    assert by_name["Not empty (E)"]["mean"] == 1.0
    assert by_name["Says simulator"]["n"] == 3
    assert summary["tokens"] == sum(j.total_tokens for j in jobs) > 0
    assert summary["latency_p50"] > 0


def test_a_budget_stops_it_cleanly(stack, seeded):
    bob = seeded["bob"]
    # A token budget too small for the first case's plan call: its job fails on it (the
    # budget left is its own), and the experiment stops.
    experiment = actions.experiments.start_experiment(
        user=bob,
        name="Greetings on a shoestring",
        dataset=dataset(4, slug="stack-budget"),
        scorers=code_scorers(),
        versions={},
        budget_tokens=20,
        concurrency=1,
    )
    experiment = _ended(experiment)

    assert experiment.status == ExperimentStatus.STOPPED
    assert experiment.status_reason.startswith("Budget reached")
    cases = list(experiment.cases.order_by("position"))
    assert cases[0].job is not None
    assert [c.job_id for c in cases[1:]] == [None, None, None]  # never started
    assert _unfinished(experiment) == 0
    time.sleep(2.5)  # a reconciler pass later: still nothing started, nothing running
    assert Job.objects.filter(experiment_case__experiment=experiment).count() == 1
    assert _unfinished(experiment) == 0
