"""Experiments: a dataset's cases run as ordinary jobs below live work, scored as they end,
stopped by their budget (their summaries and comparisons: agents.experiment_reports).

`advance` is the one step that moves an experiment on. Any worker may run it at any time,
several at once: it is sent when a case's job ends (a hook on the job's announcement) and by
every reconciler pass while the experiment runs, so a lost message only delays it. Scoring
claims each case with a conditional UPDATE before the judge is asked and holds no
transaction across that call; the bookkeeping (spend, budget, starting the next cases,
finishing) runs under the experiment's row lock.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from . import calls, enqueue, events, lifecycle, recovery, scoring
from .audit import audit_system
from .models import (
    JOB_TERMINAL,
    Dataset,
    Experiment,
    ExperimentCase,
    ExperimentStatus,
    Job,
    JobStatus,
    Scorer,
    SharedState,
)
from .text import described

log = logging.getLogger(__name__)

JOB_OPEN = tuple(s for s in JobStatus.values if s not in JOB_TERMINAL)
BUDGET_REACHED = "experiment budget reached"
CANCELLED = "experiment cancelled"
# While a worker scores a case, its scoring_error says so, with the time of the claim: a
# claim older than SCORING_LEASE_S (a judge's call with its retries takes far less) is taken
# to have died with its worker.
SCORING = "Being scored since "
SCORING_LEASE_S = 900
# How long a process trusts its last look at whether any experiment runs.
RUNNING_CACHE_S = 3.0
CLAIM_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"
ERROR_CHARS = ExperimentCase._meta.get_field("scoring_error").max_length


def format_versions(pins: dict[str, int]) -> str:
    """{"reviewer": 2} as "reviewer@2", as the forms and the CLI read it."""
    return ", ".join(f"{slug}@{number}" for slug, number in pins.items())


def start(
    *,
    dataset: Dataset,
    name: str,
    scorers: list[Scorer],
    agent_versions: dict[str, int],
    budget_tokens: int | None,
    budget_cost: Decimal | None,
    concurrency: int,
    actor,
) -> Experiment:
    """Copy the dataset's cases into a new running experiment and start its first cases.
    The copies are what it runs: editing the dataset later changes nothing here."""
    with transaction.atomic():
        experiment = Experiment.objects.create(
            name=name,
            dataset=dataset,
            dataset_name=dataset.name,
            agent_versions=dict(agent_versions),
            budget_tokens=budget_tokens,
            budget_cost=budget_cost,
            concurrency=concurrency,
            created_by=actor if actor is not None and actor.pk else None,
        )
        experiment.scorers.set(scorers)
        ExperimentCase.objects.bulk_create(
            ExperimentCase(
                experiment=experiment,
                position=position,
                case=case,
                title=case.title,
                description=case.description,
                expected=case.expected,
                notes=case.notes,
                tags=case.tags,
            )
            for position, case in enumerate(dataset.cases.order_by("pk"), start=1)
        )
        _running.forget()
        advance(experiment.pk)
    return experiment


def advance(experiment_id: int) -> None:
    """Start the next cases in the room the ended ones left, score the ended ones, then stop
    or finish. The next cases start before the scoring, so a judge's calls never keep the
    experiment from running its `concurrency` cases; each worker that advances at once
    scores the cases it claims."""
    experiment = Experiment.objects.filter(pk=experiment_id).first()
    if experiment is None or experiment.status == ExperimentStatus.CANCELLED:
        return
    _settle(experiment_id)
    if _score_ended(experiment):
        _settle(experiment_id)


def _settle(experiment_id: int) -> None:
    """Under the experiment's row lock: stop it at its budget, start cases where there is
    room, or finish it once every case is scored."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
        if experiment is None or experiment.status != ExperimentStatus.RUNNING:
            return
        tokens, cost = spend(experiment)
        reached = _budget_reached(experiment, tokens, cost) or _case_out_of_budget(experiment)
        if reached:
            _end(experiment, ExperimentStatus.STOPPED, reached, BUDGET_REACHED)
            return
        counts = ExperimentCase.objects.filter(experiment=experiment).aggregate(
            unstarted=Count("pk", filter=Q(job__isnull=True, scored_at__isnull=True)),
            unfinished=Count("pk", filter=Q(job__status__in=JOB_OPEN)),
            unscored=Count("pk", filter=Q(scored_at__isnull=True)),
        )
        free = experiment.concurrency - counts["unfinished"]
        if counts["unstarted"] and free > 0:
            _start_cases(experiment, free, tokens, cost)
        elif not counts["unscored"]:
            experiment.status = ExperimentStatus.COMPLETED
            experiment.finished_at = timezone.now()
            experiment.save(update_fields=["status", "finished_at"])


def spend(experiment: Experiment) -> tuple[int, Decimal]:
    """Tokens and money its cases' jobs spent (a judge's calls count in the job it scored)."""
    totals = Job.objects.filter(experiment_case__experiment=experiment).aggregate(
        tokens=Sum("total_tokens"), cost=Sum("total_cost")
    )
    return totals["tokens"] or 0, totals["cost"] or Decimal(0)


def _budget_reached(experiment: Experiment, tokens: int, cost: Decimal) -> str:
    if experiment.budget_tokens is not None and tokens >= experiment.budget_tokens:
        return f"Budget reached: {tokens:,} of {experiment.budget_tokens:,} tokens spent."
    if experiment.budget_cost is not None and cost >= experiment.budget_cost:
        return f"Budget reached: ${cost:.4f} of ${experiment.budget_cost:.4f} spent."
    return ""


def _case_out_of_budget(experiment: Experiment) -> str:
    """A case's job that failed on its budget (what was left of the experiment's): a call
    is refused before it starts when its prompt alone would pass it, so the experiment's
    spend may stay under its budget while no case can run in what is left."""
    error = (
        Job.objects.filter(
            experiment_case__experiment=experiment,
            status=JobStatus.FAILED,
            error__startswith=calls.BUDGET_EXCEEDED,
        )
        .values_list("error", flat=True)
        .first()
    )
    if error is None:
        return ""
    return f"Budget reached: a case stopped on what was left of it ({error})."


def _start_cases(experiment: Experiment, count: int, tokens: int, cost: Decimal) -> None:
    """The next `count` cases as ordinary jobs, each allowed its share of what is left of
    the budget (what is left over `concurrency`): the cases in flight together cannot pass
    the experiment's budget by more than the calls already running, a hard stop as a job's
    own is. A case its share cannot finish stops the experiment (_case_out_of_budget)."""
    cases = list(
        ExperimentCase.objects.filter(
            experiment=experiment, job__isnull=True, scored_at__isnull=True
        ).order_by("position")[:count]
    )
    share = experiment.concurrency
    left_tokens = None
    if experiment.budget_tokens is not None:
        left_tokens = max(experiment.budget_tokens - tokens, 0) // share
    left_cost = None
    if experiment.budget_cost is not None:
        left_cost = (max(experiment.budget_cost - cost, Decimal(0)) / share).quantize(
            Decimal("0.0001"), rounding=ROUND_DOWN
        )
    for case in cases:
        # As a submitted job is made (agents.actions.jobs), without the operator's audit
        # row: the experiment's start is audited once.
        job = Job.objects.create(
            title=case.title,
            description=case.description,
            priority=experiment.priority,
            submitted_by_id=experiment.created_by_id,
            budget_tokens=left_tokens,
            budget_cost=left_cost,
            agent_versions=experiment.agent_versions,
        )
        SharedState.objects.create(job=job)
        events.job_changed(job.pk, moved=True)
        enqueue.plan_job(job.pk)
        case.job = job
        case.save(update_fields=["job"])


def _end(experiment: Experiment, status: str, reason: str, why: str) -> None:
    """Under the experiment's lock: its status, then every running case job cancelled (calls
    in flight finish; nothing new starts); unstarted cases never start."""
    experiment.status = status
    experiment.status_reason = reason[:300]
    experiment.finished_at = timezone.now()
    experiment.save(update_fields=["status", "status_reason", "finished_at"])
    running = Job.objects.filter(
        experiment_case__experiment=experiment, status__in=JOB_OPEN
    ).values_list("pk", flat=True)
    ended = [pk for pk in running if lifecycle.end_job(pk, JobStatus.CANCELLED, why)]
    if ended:
        audit_system("cancel", [{"job_id": pk} for pk in ended], why)


def cancel(experiment: Experiment, actor=None) -> bool:
    """Cancel a running experiment and its running case jobs; False when it had ended."""
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.status != ExperimentStatus.RUNNING:
            return False
        who = getattr(actor, "username", "") or "an operator"
        _end(locked, ExperimentStatus.CANCELLED, f"Cancelled by {who}.", CANCELLED)
    experiment.refresh_from_db()
    return True


# --- Scoring the cases whose jobs ended ---


def _claim_mark(now) -> str:
    return SCORING + now.strftime(CLAIM_FORMAT)


def _claim_lapsed(mark: str, now) -> bool:
    try:
        claimed = datetime.strptime(mark.removeprefix(SCORING), CLAIM_FORMAT)
    except ValueError:
        return True
    return now - claimed > timedelta(seconds=SCORING_LEASE_S)


def _score_ended(experiment: Experiment) -> bool:
    """Score the ended cases this worker claims; whether any case was settled."""
    ended = ExperimentCase.objects.filter(experiment=experiment, scored_at__isnull=True)
    # A case whose job failed or was cancelled has no output to score: it counts as a
    # failure in the summary.
    settled = ended.filter(job__status__in=(JobStatus.FAILED, JobStatus.CANCELLED)).update(
        scored_at=timezone.now()
    )
    done = list(ended.filter(job__status=JobStatus.COMPLETED).select_related("job"))
    if not done:
        return bool(settled)
    scorers = list(experiment.scorers.all())
    for case in done:
        mark = _claim(case)
        if mark is None:
            continue
        errors = []
        for scorer in scorers:
            try:
                scoring.score_job(
                    case.job,
                    scorer,
                    experiment=experiment,
                    expected=case.expected,
                    notes=case.notes,
                )
            except scoring.ScoringFailed as exc:
                errors.append(f"{scorer.name}: {exc}")
            except Exception as exc:  # a bug must not hold the experiment up: kept, shown
                log.exception("scoring job %s with %s failed", case.job_id, scorer.slug)
                errors.append(f"{scorer.name}: {described(exc)}")
        settled += ExperimentCase.objects.filter(pk=case.pk, scoring_error=mark).update(
            scored_at=timezone.now(), scoring_error="; ".join(errors)[:ERROR_CHARS]
        )
    return bool(settled)


def _claim(case: ExperimentCase) -> str | None:
    """Take the case's scoring, or None when another worker holds it: a conditional UPDATE
    on the mark it read, so of two workers that read the same row one wins."""
    now = timezone.now()
    if case.scoring_error.startswith(SCORING) and not _claim_lapsed(case.scoring_error, now):
        return None
    mark = _claim_mark(now)
    won = ExperimentCase.objects.filter(
        pk=case.pk, scored_at__isnull=True, scoring_error=case.scoring_error
    ).update(scoring_error=mark)
    return mark if won else None


# --- Hooks: a case's job ended; the reconciler's pass ---


class _RunningCache:
    """Whether any experiment runs, asked of the database at most every few seconds per
    process: a job's end costs nothing more when none does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until = 0.0
        self.value = False

    def get(self) -> bool:
        now = time.monotonic()
        with self.lock:
            if now < self.until:
                return self.value
        value = Experiment.objects.filter(status=ExperimentStatus.RUNNING).exists()
        with self.lock:
            self.value, self.until = value, now + RUNNING_CACHE_S
        return value

    def forget(self) -> None:
        with self.lock:
            self.until = 0.0


_running = _RunningCache()


def on_announcements(announcements: list[events.Announcement]) -> None:
    """The agents.events hook: a job that ended may be a case of a running experiment."""
    ended = [
        a.job_id
        for a in announcements
        if a.event == "job.status" and a.data.get("status") in JOB_TERMINAL
    ]
    if not ended or not _running.get():
        return
    found = (
        ExperimentCase.objects.filter(job_id__in=ended, experiment__status=ExperimentStatus.RUNNING)
        .values_list("experiment_id", flat=True)
        .distinct()
    )
    for experiment_id in found:
        enqueue.send_now("advance_experiment", experiment_id)


def sweep() -> int:
    """The reconciler's pass: each running experiment that has something to do (a case
    whose job ended unscored, room for a case that has not started, its budget spent, or
    nothing left but finishing) is advanced, in case a job's end was announced where no hook
    saw it. One query (none while no experiment runs); how many were sent."""
    if not _running.get():
        return 0
    ended = Q(cases__scored_at__isnull=True, cases__job__status__in=JOB_TERMINAL)
    rows = Experiment.objects.filter(status=ExperimentStatus.RUNNING).annotate(
        ended=Count("cases", filter=ended),
        unstarted=Count("cases", filter=Q(cases__job__isnull=True, cases__scored_at__isnull=True)),
        unfinished=Count("cases", filter=Q(cases__job__status__in=JOB_OPEN)),
        tokens=Sum("cases__job__total_tokens"),
        cost=Sum("cases__job__total_cost"),
    )
    sent = 0
    for row in rows:
        due = (
            row.ended
            or (row.unstarted and row.unfinished < row.concurrency)
            or not (row.unstarted or row.unfinished)
            or _budget_reached(row, row.tokens or 0, row.cost or Decimal(0))
        )
        if due:
            enqueue.send_now("advance_experiment", row.pk)
            sent += 1
    return sent


def register() -> None:
    """Hook the experiments to job ends (events) and to the reconciler's passes."""
    events.on_announcements(on_announcements)
    recovery.on_pass("experiments", sweep)
