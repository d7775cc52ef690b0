"""Reading experiments: a summary (progress, spend, latency, per scorer the mean with its
95 % interval and pass rate), the comparison of two, and their export as CSV or JSON Lines.
A few queries whatever the number of cases; agents.experiments runs them."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from django.db.models import Q

from . import evalstats, scoring
from .experiments import JOB_OPEN, SCORING
from .models import (
    JOB_TERMINAL,
    Experiment,
    ExperimentCase,
    Job,
    JobStatus,
    Score,
    Scorer,
    Subtask,
)
from .text import csv_cell

# People's 1–5 ratings (value (rating − 1) / 4), a column of their own: 4 or 5 passes.
HUMAN = scoring.HUMAN_SCORER_NAME
HUMAN_THRESHOLD = 0.75


def _cases(experiment: Experiment) -> list[ExperimentCase]:
    cases = list(
        ExperimentCase.objects.filter(experiment=experiment)
        .select_related("job")
        .defer("job__description", "job__last_crash")
        .order_by("position")
    )
    return unmarked(cases)


def unmarked(cases: list[ExperimentCase]) -> list[ExperimentCase]:
    """The cases as readers see them: a case being scored says so in `being_scored`, and
    its scoring_error (which holds the claim) reads empty. In memory only."""
    for case in cases:
        case.being_scored = case.scoring_error.startswith(SCORING)
        if case.being_scored:
            case.scoring_error = ""
    return cases


def scores_of(cases: list[ExperimentCase], scorers: list[Scorer]) -> dict[int, dict[str, Score]]:
    """Job id → scorer name → its score of the job's output. People's ratings are one more
    column, HUMAN: one person's rating, or several people's as one unsaved Score of their
    mean."""
    job_ids = [case.job_id for case in cases if case.job_id]
    found: dict[int, dict[str, Score]] = {}
    if not job_ids:
        return found
    rows = (
        Score.objects.filter(job_id__in=job_ids, subtask__isnull=True)
        .filter(Q(scorer__in=scorers) | Q(source=Score.Source.HUMAN))
        .order_by("pk")
    )
    names = {scorer.pk: scorer.name for scorer in scorers}
    rated: dict[int, list[Score]] = {}
    for score in rows:
        if score.source == Score.Source.HUMAN:
            rated.setdefault(score.job_id, []).append(score)
        else:
            found.setdefault(score.job_id, {})[names[score.scorer_id]] = score
    for job_id, ratings in rated.items():
        found.setdefault(job_id, {})[HUMAN] = (
            ratings[0] if len(ratings) == 1 else _together(ratings)
        )
    return found


def _together(ratings: list[Score]) -> Score:
    value = sum(r.value for r in ratings) / len(ratings)
    reasons = " / ".join(r.reason for r in ratings if r.reason)
    return Score(
        job_id=ratings[0].job_id,
        scorer_name=HUMAN,
        source=Score.Source.HUMAN,
        value=value,
        reason=f"{len(ratings)} people's ratings. {reasons}".strip()[:2000],
    )


def _columns(scorers: list[Scorer], scores: dict[int, dict[str, Score]]) -> list[tuple]:
    """(name, threshold, scorer) of each column: the experiment's scorers, then people's
    ratings when someone rated one of its cases."""
    columns = [(scorer.name, scorer.threshold, scorer) for scorer in scorers]
    if any(HUMAN in given for given in scores.values()):
        columns.append((HUMAN, HUMAN_THRESHOLD, None))
    return columns


def elapsed(job: Job | None) -> float | None:
    """A completed job's seconds from its submission to its answer."""
    if job is None or job.status != JobStatus.COMPLETED or job.finished_at is None:
        return None
    return (job.finished_at - job.created_at).total_seconds()


def _failure(case: ExperimentCase) -> str:
    job = case.job
    if job is not None and job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return job.error or job.status_reason or f"The job was {job.status}."
    if case.scoring_error and not case.scoring_error.startswith(SCORING):
        return case.scoring_error
    return ""


def summary(experiment: Experiment) -> dict:
    """Progress, spend, latency and per scorer the mean with its 95 % interval and pass
    rate (people's ratings as one more, whose `scorer` is None); each case with its job and
    scores; the failures. Three queries."""
    scorers = list(experiment.scorers.all())
    cases = _cases(experiment)
    scores = scores_of(cases, scorers)
    jobs = [case.job for case in cases if case.job is not None]
    latencies = [s for s in map(elapsed, jobs) if s is not None]
    by_scorer = []
    for name, threshold, scorer in _columns(scorers, scores):
        given = (scores.get(job.pk, {}).get(name) for job in jobs)
        values = [score.value for score in given if score is not None]
        mean, low, high = evalstats.mean_interval(values)
        by_scorer.append(
            {
                "scorer": scorer,
                "name": name,
                "n": len(values),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "pass_rate": evalstats.pass_rate(values, threshold),
                "threshold": threshold,
            }
        )
    return {
        "total": len(cases),
        "done": sum(1 for job in jobs if job.status in JOB_TERMINAL),
        "running": sum(1 for job in jobs if job.status in JOB_OPEN),
        "failed": sum(1 for job in jobs if job.status in (JobStatus.FAILED, JobStatus.CANCELLED)),
        "scored": sum(1 for case in cases if case.scored_at is not None),
        "tokens": sum(job.total_tokens for job in jobs),
        "cost": sum((job.total_cost for job in jobs), Decimal(0)),
        "latency_p50": evalstats.percentile(latencies, 50),
        "latency_p95": evalstats.percentile(latencies, 95),
        "scorers": by_scorer,
        "cases": [
            {"case": case, "job": case.job, "scores": scores.get(case.job_id, {})} for case in cases
        ],
        "failures": [{"case": case, "error": error} for case in cases if (error := _failure(case))],
    }


def ran_versions(
    experiment: Experiment, cases: list[ExperimentCase] | None = None
) -> dict[str, int]:
    """The versions each agent ran with: those the experiment chose, else the one its steps
    recorded (when they all ran the same)."""
    seen: dict[str, set[int]] = {}
    jobs = (
        [c.job_id for c in cases if c.job_id]
        if cases is not None
        else ExperimentCase.objects.filter(experiment=experiment).values("job_id")
    )
    rows = (
        Subtask.objects.filter(job_id__in=jobs)
        .exclude(agent__isnull=True)
        .exclude(agent_version__isnull=True)
        .values_list("agent__slug", "agent_version")
        .distinct()
    )
    for slug, number in rows:
        seen.setdefault(slug, set()).add(number)
    ran = {slug: numbers.pop() for slug, numbers in seen.items() if len(numbers) == 1}
    return {**ran, **(experiment.agent_versions or {})}


def _same_input(a: ExperimentCase | None, b: ExperimentCase | None) -> bool:
    return bool(a and b and a.title == b.title and a.description == b.description)


def compare(a: Experiment, b: Experiment) -> dict:
    """B against A, case by case (paired by position): per scorer B's wins, losses and ties,
    both means, the difference B − A with its 95 % interval (paired when every pair ran the
    same input, Welch's otherwise) and whether it is larger than its noise; the cases side
    by side; the agent versions that differ."""
    cases_a, cases_b = _cases(a), _cases(b)
    scorers_a, scorers_b = list(a.scorers.all()), list(b.scorers.all())
    scores_a, scores_b = scores_of(cases_a, scorers_a), scores_of(cases_b, scorers_b)
    by_position_a = {case.position: case for case in cases_a}
    by_position_b = {case.position: case for case in cases_b}
    positions = sorted(by_position_a.keys() | by_position_b.keys())

    def values(case: ExperimentCase | None, scores: dict) -> dict[str, float]:
        if case is None or not case.job_id:
            return {}
        return {name: score.value for name, score in scores.get(case.job_id, {}).items()}

    rows = []
    for position in positions:
        case_a, case_b = by_position_a.get(position), by_position_b.get(position)
        rows.append(
            {
                "position": position,
                "title": (case_b or case_a).title,
                "a": case_a,
                "b": case_b,
                "scores_a": values(case_a, scores_a),
                "scores_b": values(case_b, scores_b),
            }
        )
    paired = all(_same_input(by_position_a.get(p), by_position_b.get(p)) for p in positions)
    names = sorted(
        {name for name, _, _ in _columns(scorers_a, scores_a)}
        | {name for name, _, _ in _columns(scorers_b, scores_b)}
    )
    by_scorer = []
    for name in names:
        all_a = [row["scores_a"][name] for row in rows if name in row["scores_a"]]
        all_b = [row["scores_b"][name] for row in rows if name in row["scores_b"]]
        pairs = [
            (row["scores_b"][name], row["scores_a"][name])
            for row in rows
            if name in row["scores_a"] and name in row["scores_b"]
        ]
        wins, losses, ties = evalstats.win_loss_tie(pairs)
        if paired:
            diff, low, high = evalstats.diff_interval(
                [x for _, x in pairs], [y for y, _ in pairs], paired=True
            )
        else:
            diff, low, high = evalstats.diff_interval(all_a, all_b, paired=False)
        by_scorer.append(
            {
                "name": name,
                "wins": wins,
                "losses": losses,
                "ties": ties,
                "mean_a": evalstats.mean(all_a),
                "mean_b": evalstats.mean(all_b),
                "diff": diff,
                "diff_low": low,
                "diff_high": high,
                "significant": evalstats.significant(low, high),
            }
        )
    ran_a, ran_b = ran_versions(a, cases_a), ran_versions(b, cases_b)
    versions = [
        {"agent": slug, "a": ran_a.get(slug), "b": ran_b.get(slug)}
        for slug in sorted(ran_a.keys() | ran_b.keys())
        if ran_a.get(slug) != ran_b.get(slug)
    ]
    return {"scorers": by_scorer, "cases": rows, "versions": versions}


def export_rows(experiment: Experiment) -> list[dict]:
    """One flat row per case: its input's title, the job's status and output, spend and
    latency, and each scorer's score and reason."""
    scorers = list(experiment.scorers.all())
    cases = _cases(experiment)
    scores = scores_of(cases, scorers)
    columns = _columns(scorers, scores)
    rows = []
    for case in cases:
        job = case.job
        seconds = elapsed(job)
        row = {
            "position": case.position,
            "title": case.title,
            "status": job.status if job else "not started",
            "output": job.result if job else "",
            "tokens": job.total_tokens if job else 0,
            "cost": float(job.total_cost) if job else 0.0,
            "latency_s": round(seconds, 3) if seconds is not None else None,
        }
        given = scores.get(case.job_id, {})
        for name, _, _ in columns:
            score = given.get(name)
            row[f"score:{name}"] = score.value if score else None
            row[f"reason:{name}"] = score.reason if score else ""
        rows.append(row)
    return rows


def export_csv(rows: list[dict]) -> str:
    """export_rows as CSV, safe to open in a spreadsheet."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return out.getvalue()


def export_jsonl(rows: list[dict]) -> str:
    """export_rows as JSON Lines, one case a line."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
