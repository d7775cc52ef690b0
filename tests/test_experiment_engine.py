"""The experiment engine's bookkeeping, step by step, with no worker: each case job is ended
here as a worker would end it, and `advance` is called as the job-end hook would call it."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import evalstats, experiment_reports, experiments, scoring
from agents.actions import submit_job
from agents.models import (
    EXPERIMENT_PRIORITY,
    AuditEntry,
    Case,
    Dataset,
    ExperimentCase,
    ExperimentStatus,
    Job,
    JobStatus,
    Score,
)

from .cast import person
from .experiments_support import code_scorers, dataset, finish, start

pytestmark = pytest.mark.usefixtures("no_broker")


def _case_jobs(experiment) -> list[Job]:
    return list(Job.objects.filter(experiment_case__experiment=experiment).order_by("pk"))


@pytest.mark.django_db
def test_it_copies_the_cases_and_starts_them_as_low_priority_pinned_jobs():
    bob = person("bob")
    data = dataset(3)
    experiment = start(data, bob, versions={"coder": 1}, concurrency=2)

    cases = list(experiment.cases.order_by("position"))
    assert [(c.position, c.title, c.expected, c.notes) for c in cases] == [
        (1, "Case 1", "hello", "note 1"),
        (2, "Case 2", "hello", "note 2"),
        (3, "Case 3", "hello", "note 3"),
    ]
    jobs = _case_jobs(experiment)
    assert len(jobs) == 2  # the concurrency: the third waits its turn
    assert {j.priority for j in jobs} == {EXPERIMENT_PRIORITY}
    assert all(j.agent_versions == {"coder": 1} for j in jobs)
    assert all(j.submitted_by == bob and j.status == JobStatus.QUEUED for j in jobs)
    assert [j.title for j in jobs] == ["Case 1", "Case 2"]
    assert experiment.status == ExperimentStatus.RUNNING


@pytest.mark.django_db
def test_editing_the_dataset_later_changes_nothing_in_the_experiment():
    data = dataset(2)
    experiment = start(data, person("bob"))
    data.cases.filter(title="Case 1").update(title="Renamed", description="Something else.")
    data.cases.filter(title="Case 2").delete()
    data.cases.create(title="Case 3", description="A newcomer, added after.")

    cases = list(experiment.cases.order_by("position"))
    assert [(c.title, c.description) for c in cases] == [
        ("Case 1", "Say hello to person number 1, politely."),
        ("Case 2", "Say hello to person number 2, politely."),
    ]
    assert experiment_reports.summary(experiment)["total"] == 2


@pytest.mark.django_db
def test_no_more_than_its_concurrency_run_at_once():
    experiment = start(dataset(5), person("bob"), concurrency=2)
    experiments.advance(experiment.pk)
    assert len(_case_jobs(experiment)) == 2

    first = _case_jobs(experiment)[0]
    finish(first)
    experiments.advance(experiment.pk)
    jobs = _case_jobs(experiment)
    assert len(jobs) == 3
    assert sum(1 for j in jobs if j.status not in (JobStatus.COMPLETED,)) == 2


@pytest.mark.django_db
def test_ended_cases_are_scored_and_the_experiment_completes():
    experiment = start(dataset(2), person("bob"), concurrency=5)
    one, two = _case_jobs(experiment)
    finish(one, "Hello from the simulator.")
    two.transition(two.status, JobStatus.FAILED, error="The plan could not be read.")
    experiments.advance(experiment.pk)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED
    assert experiment.finished_at is not None
    scores = Score.objects.filter(job=one).order_by("scorer_name")
    assert [(s.scorer_name, s.value, s.experiment_id) for s in scores] == [
        ("Not empty (E)", 1.0, experiment.pk),
        ("Says simulator", 1.0, experiment.pk),
    ]
    assert not Score.objects.filter(job=two).exists()  # a failed job has nothing to score
    summary = experiment_reports.summary(experiment)
    assert (summary["total"], summary["done"], summary["failed"], summary["scored"]) == (2, 2, 1, 2)
    assert [f["error"] for f in summary["failures"]] == ["The plan could not be read."]
    rows = {row["name"]: row for row in summary["scorers"]}
    assert rows["Says simulator"]["n"] == 1 and rows["Says simulator"]["pass_rate"] == 1.0


@pytest.mark.django_db
def test_a_budget_stops_it_cleanly():
    experiment = start(dataset(5), person("bob"), budget_tokens=1000, concurrency=2)
    one, two = _case_jobs(experiment)
    # Each case may spend its share of what is left: together they cannot pass the budget.
    assert (one.budget_tokens, two.budget_tokens) == (500, 500)
    finish(one, tokens=1200)
    experiments.advance(experiment.pk)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED
    assert "1,200 of 1,000 tokens" in experiment.status_reason
    two.refresh_from_db()
    assert two.status == JobStatus.CANCELLED
    assert two.error == experiments.BUDGET_REACHED
    # The cases that had not started never will.
    assert ExperimentCase.objects.filter(experiment=experiment, job__isnull=True).count() == 3
    experiments.advance(experiment.pk)
    assert len(_case_jobs(experiment)) == 2
    assert AuditEntry.objects.filter(job=two, action="cancel").exists()


@pytest.mark.django_db
def test_a_case_that_ran_out_of_what_was_left_stops_it():
    # Its first call was refused before it started: the experiment's spend stays under its
    # budget, but no case can run in what is left.
    experiment = start(dataset(3), person("bob"), budget_tokens=20, concurrency=1)
    (job,) = _case_jobs(experiment)
    job.transition(job.status, JobStatus.FAILED, error="budget exceeded")
    experiments.advance(experiment.pk)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED
    assert experiment.status_reason.startswith("Budget reached: a case stopped")
    assert len(_case_jobs(experiment)) == 1


@pytest.mark.django_db
def test_the_next_case_gets_what_is_left_of_the_budget():
    experiment = start(dataset(3), person("bob"), budget_tokens=1000, concurrency=1)
    finish(_case_jobs(experiment)[0], tokens=300)
    experiments.advance(experiment.pk)
    assert _case_jobs(experiment)[1].budget_tokens == 700


@pytest.mark.django_db
def test_cases_in_flight_share_what_is_left_of_the_budget():
    experiment = start(dataset(6), person("bob"), budget_cost=Decimal("1.00"), concurrency=4)
    assert [job.budget_cost for job in _case_jobs(experiment)] == [Decimal("0.25")] * 4
    first = _case_jobs(experiment)[0]
    first.transition(first.status, JobStatus.COMPLETED, result="Done.", total_cost=Decimal("0.2"))
    experiments.advance(experiment.pk)
    assert _case_jobs(experiment)[4].budget_cost == Decimal("0.2000")  # (1.00 − 0.20) / 4


@pytest.mark.django_db
def test_cancelling_cancels_the_running_case_jobs():
    experiment = start(dataset(3), person("bob"), concurrency=2)
    assert experiments.cancel(experiment, person("bob"))
    assert experiment.status == ExperimentStatus.CANCELLED
    assert {j.status for j in _case_jobs(experiment)} == {JobStatus.CANCELLED}
    assert not experiments.cancel(experiment, person("bob"))  # it had ended


@pytest.mark.django_db(transaction=True)
def test_two_advances_at_once_score_each_case_once(monkeypatch):
    experiment = start(dataset(3), person("bob"), concurrency=3)
    for job in _case_jobs(experiment):
        finish(job)
    calls = []
    real = scoring.score_job

    def slow_score(job, scorer, **kwargs):
        calls.append((job.pk, scorer.pk))
        time.sleep(0.05)  # long enough for the other advance to reach the same case
        return real(job, scorer, **kwargs)

    monkeypatch.setattr(scoring, "score_job", slow_score)
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            experiments.advance(experiment.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Neither advance scored what the other did; every case is scored once by each scorer.
    # (A stack worker left running by an earlier test may score a case too, through the
    # same claim: its calls are not in `calls`, its scores are in the table.)
    assert len(calls) == len(set(calls)) <= 3 * len(code_scorers())
    scored = Score.objects.filter(experiment=experiment).values_list("job_id", "scorer_id")
    assert len(scored) == len(set(scored)) == 3 * len(code_scorers())
    assert set(calls) <= set(scored)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_worker_lapses(monkeypatch):
    experiment = start(dataset(1), person("bob"))
    (job,) = _case_jobs(experiment)
    finish(job)
    case = experiment.cases.get()
    # A worker claimed it and died before it finished.
    case.scoring_error = experiments._claim_mark(job.finished_at)
    case.save(update_fields=["scoring_error"])
    experiments.advance(experiment.pk)
    case.refresh_from_db()
    assert case.scored_at is None  # the claim still holds

    monkeypatch.setattr(experiments, "SCORING_LEASE_S", 0)
    experiments.advance(experiment.pk)
    case.refresh_from_db()
    assert case.scored_at is not None and case.scoring_error == ""
    assert Score.objects.filter(job=job).count() == 2


@pytest.mark.django_db
def test_a_scoring_failure_is_kept_on_the_case(monkeypatch):
    experiment = start(dataset(1), person("bob"))
    (job,) = _case_jobs(experiment)
    finish(job)

    def failing(job, scorer, **kwargs):
        raise scoring.ScoringFailed("The judge's answer held no score.")

    monkeypatch.setattr(scoring, "score_job", failing)
    experiments.advance(experiment.pk)
    case = experiment.cases.get()
    assert case.scored_at is not None
    assert "The judge's answer held no score." in case.scoring_error
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED
    failures = experiment_reports.summary(experiment)["failures"]
    assert [f["case"].pk for f in failures] == [case.pk]


@pytest.mark.django_db
def test_summary_compare_and_export_read_200_cases_in_a_few_queries():
    data = Dataset.objects.create(name="Big", slug="big")
    Case.objects.bulk_create(
        Case(dataset=data, title=f"Case {i}", description="Say hello.") for i in range(200)
    )
    scorers = code_scorers()
    runs = []
    for _ in range(2):
        experiment = start(data, person("bob"), scorers=scorers, concurrency=1)
        jobs = Job.objects.bulk_create(
            Job(title=f"Case {i}", description="Say hello.", status=JobStatus.COMPLETED)
            for i in range(199)
        )
        cases = list(experiment.cases.filter(job__isnull=True).order_by("position"))
        for case, job in zip(cases, jobs, strict=True):
            case.job = job
        ExperimentCase.objects.bulk_update(cases, ["job"])
        Score.objects.bulk_create(
            Score(
                job=job,
                scorer=s,
                scorer_name=s.name,
                source="code",
                value=0.5,
                experiment=experiment,
            )
            for job in jobs
            for s in scorers
        )
        runs.append(experiment)

    with CaptureQueriesContext(connection) as summary_queries:
        summary = experiment_reports.summary(runs[0])
    assert summary["total"] == 200 and summary["scorers"][0]["n"] == 199
    assert len(summary_queries) <= 4
    with CaptureQueriesContext(connection) as export_queries:
        assert len(experiment_reports.export_rows(runs[0])) == 200
    assert len(export_queries) <= 4
    with CaptureQueriesContext(connection) as compare_queries:
        compared = experiment_reports.compare(*runs)
    assert len(compared["cases"]) == 200
    assert len(compare_queries) <= 8


@pytest.mark.django_db
def test_case_jobs_do_not_count_against_their_creators_submission_limit(settings):
    settings.JOB_SUBMISSIONS_PER_HOUR = 2
    bob = person("bob")
    start(dataset(3), bob, concurrency=3)
    job = submit_job(title="Live work", description="Submitted during the experiment.", user=bob)
    assert job.submitted_by == bob


def _ran(data, results: list[str]):
    experiment = start(data, person("bob"), concurrency=len(results))
    for job, result in zip(_case_jobs(experiment), results, strict=True):
        finish(job, result)
    experiments.advance(experiment.pk)
    return experiment


@pytest.mark.django_db
def test_compare_pairs_cases_that_ran_the_same_input_and_otherwise_does_not():
    same = dataset(3)
    a = _ran(same, ["Hi.", "Hi.", "The simulator."])  # says simulator: 0, 0, 1
    b = _ran(same, ["The simulator.", "The simulator.", "Hi."])  # 1, 1, 0
    says = {row["name"]: row for row in experiment_reports.compare(a, b)["scorers"]}[
        "Says simulator"
    ]
    # B wins cases 1 and 2, loses case 3; paired differences b − a: 1, 1, −1
    assert (says["wins"], says["losses"], says["ties"]) == (2, 1, 0)
    paired = evalstats.diff_interval([0, 0, 1], [1, 1, 0], paired=True)
    assert (says["diff"], says["diff_low"], says["diff_high"]) == pytest.approx(paired)
    assert not says["significant"]

    elsewhere = dataset(3, slug="other")
    elsewhere.cases.update(description="Say goodbye instead.")
    other = _ran(elsewhere, ["The simulator.", "The simulator.", "Hi."])
    says = {row["name"]: row for row in experiment_reports.compare(a, other)["scorers"]}[
        "Says simulator"
    ]
    # Other inputs at the same positions: two samples, Welch's interval (±1.309, not ±2.869).
    welch = evalstats.diff_interval([0, 0, 1], [1, 1, 0], paired=False)
    assert (says["diff"], says["diff_low"], says["diff_high"]) == pytest.approx(welch)
    assert welch != pytest.approx(paired)


@pytest.mark.django_db
def test_peoples_ratings_are_a_column_of_their_own():
    experiment = _ran(dataset(2), ["The simulator.", "Hi."])
    one, two = _case_jobs(experiment)
    scoring.rate_job(one, person("bob"), 5, "Spot on")
    scoring.rate_job(one, person("alice"), 3, "Fine")
    scoring.rate_job(two, person("bob"), 1, "")

    summary = experiment_reports.summary(experiment)
    human = summary["scorers"][-1]
    # job one: (1 + 0.5) / 2 = 0.75; job two: 0 → mean 0.375; 4 or 5 (0.75 and up) passes
    assert (human["name"], human["scorer"], human["n"]) == ("Human rating", None, 2)
    assert human["mean"] == pytest.approx(0.375)
    assert human["pass_rate"] == 0.5
    first = summary["cases"][0]["scores"]["Human rating"]
    assert first.value == 0.75 and "Spot on / Fine" in first.reason
    rows = experiment_reports.export_rows(experiment)
    assert [r["score:Human rating"] for r in rows] == [0.75, 0.0]


@pytest.mark.django_db
def test_a_case_being_scored_reads_as_such_not_as_an_error():
    experiment = start(dataset(1), person("bob"))
    (job,) = _case_jobs(experiment)
    finish(job)
    ExperimentCase.objects.filter(experiment=experiment).update(
        scoring_error=experiments._claim_mark(job.finished_at)
    )
    summary = experiment_reports.summary(experiment)
    (row,) = summary["cases"]
    assert row["case"].being_scored and row["case"].scoring_error == ""
    assert summary["failures"] == []
