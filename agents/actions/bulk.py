"""Bulk actions: cancel, retry or re-run every job of a selection (agents.bulk.select), each
job checked again under its row lock, in one transaction with one audit entry listing them.

They do what cancel_job, retry_job and rerun_job do to one job, in a few statements per
action rather than a few per job. Per job, nothing is audited: the one entry names every
job, and each job's own page shows its moves (a per-job entry would be a thousand rows for
one click).

A retry or re-run releases its jobs in batches (agents.bulk.release_delay): they keep their
priority, and work submitted after them is not queued behind all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import bulk, enqueue, events, lifecycle, rerun, signals
from ..audit import audit
from ..models import (
    JOB_TERMINAL,
    SUBTASK_RETRYABLE,
    AuditEntry,
    Job,
    JobStatus,
    SharedState,
    Subtask,
    SubtaskStatus,
    WaitingFor,
)
from .checks import require

CANCELLED_BY_OPERATOR = "Cancelled by an operator."
GONE = "no longer exists"
# Room for every id of BULK_MAX_JOBS jobs, and for the new ones of a re-run.
DETAIL_CHARS_PER_JOB = 20


class TooManyJobs(ValueError):
    """More jobs than BULK_MAX_JOBS: nothing was done."""


@dataclass
class BulkResult:
    action: str
    applied: list[int] = field(default_factory=list)  # the jobs acted on
    skipped: dict[int, str] = field(default_factory=dict)  # job id → why not
    created: list[int] = field(default_factory=list)  # a re-run's new jobs, as `applied`


def bulk_act(action: str, jobs, *, user=None) -> BulkResult:
    """Cancel, retry or re-run `jobs` (a QuerySet of Job). Raises TooManyJobs, before doing
    anything, when they are more than BULK_MAX_JOBS; ValueError for an unknown action;
    PermissionDenied unless `user` may change jobs (and submit them, for a re-run)."""
    if action not in bulk.ACTIONS:
        raise ValueError(f"No bulk action {action!r}: choose one of {', '.join(bulk.ACTIONS)}.")
    require(user, "change_job")
    if action == "rerun":
        require(user, "add_job")
    limit = settings.BULK_MAX_JOBS
    ids = list(jobs.order_by("pk").values_list("pk", flat=True)[: limit + 1])
    if len(ids) > limit:
        raise TooManyJobs(
            f"More than {limit} jobs are selected, the most one bulk action takes "
            "(BULK_MAX_JOBS): narrow the filter. Nothing was done."
        )
    result = BulkResult(action)
    with transaction.atomic():
        # Locked in id order, as every bulk move takes them, so two bulk actions cannot
        # deadlock; each job's status is read again under its lock.
        rows = {
            pk: (status, planned_at, review_plan)
            for pk, status, planned_at, review_plan in Job.objects.select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", "status", "planned_at", "review_plan")
        }
        eligible = []
        for pk in ids:
            if pk not in rows:
                result.skipped[pk] = GONE
            elif reason := bulk.refusal(action, rows[pk][0]):
                result.skipped[pk] = reason
            else:
                eligible.append(pk)
        if action == "cancel":
            result.applied = _cancel(eligible)
        elif action == "retry":
            result.applied = sorted(_retry({pk: rows[pk] for pk in eligible}))
        else:
            result.created = _rerun(eligible, user)
            result.applied = eligible
        for pk in set(eligible) - set(result.applied):  # moved by another meanwhile
            result.skipped[pk] = "changed meanwhile"
        if result.applied or result.skipped:
            audit(
                f"bulk_{action}",
                actor=user,
                detail=_detail(result),
                detail_chars=DETAIL_CHARS_PER_JOB * (limit + 10),
            )
    return result


def _detail(result: BulkResult) -> str:
    done = {"cancel": "cancelled", "retry": "retried", "rerun": "re-ran"}[result.action]
    lines = [f"{done} {len(result.applied)}: {bulk.id_ranges(result.applied) or 'none'}"]
    if result.created:
        lines.append(f"as new jobs {bulk.id_ranges(result.created)}")
    by_reason: dict[str, list[int]] = {}
    for pk, reason in result.skipped.items():
        by_reason.setdefault(reason, []).append(pk)
    for reason, pks in sorted(by_reason.items()):
        lines.append(f"skipped {len(pks)}, {reason}: {bulk.id_ranges(pks)}")
    return "; ".join(lines)


def _cancel(ids: list[int]) -> list[int]:
    """lifecycle.end_job for each: nothing new starts, calls in flight finish."""
    if not ids:  # a move's UPDATE … RETURNING cannot be compiled for no rows
        return []
    moved = Job.objects.filter(pk__in=ids).move(
        bulk.ELIGIBLE["cancel"], JobStatus.CANCELLED, error=CANCELLED_BY_OPERATOR
    )
    stopped = (SubtaskStatus.WAITING, SubtaskStatus.QUEUED, SubtaskStatus.AWAITING_APPROVAL)
    if moved:
        Subtask.objects.filter(job_id__in=moved).move(
            stopped, SubtaskStatus.CANCELLED, error=CANCELLED_BY_OPERATOR
        )
    return moved


def _retry(rows: dict[int, tuple]) -> list[int]:
    """retry_job for each: a job resumes from its first unfinished step (planning, its open
    subtasks, review of an unapproved plan, or synthesis)."""
    now = timezone.now()
    planned = [pk for pk, (_, planned_at, _) in rows.items() if planned_at is not None]
    open_subtasks: dict[int, list[int]] = {}
    for job_id, pk in (
        Subtask.objects.filter(job_id__in=planned)
        .filter(~Q(status=SubtaskStatus.COMPLETED))
        .values_list("job_id", "pk")
    ):
        open_subtasks.setdefault(job_id, []).append(pk)
    reviewed = [pk for pk in open_subtasks if rows[pk][2]]
    approved = set(
        AuditEntry.objects.filter(job_id__in=reviewed, action="approve_plan").values_list(
            "job_id", flat=True
        )
    )
    batches: dict[float, dict[str, list[int]]] = {}
    for index, pk in enumerate(sorted(rows)):
        if rows[pk][1] is None:
            branch = "plan"
        elif pk not in open_subtasks:
            branch = "synthesize"
        elif rows[pk][2] and pk not in approved:
            branch = "review"
        else:
            branch = "work"
        # A plan to review waits for a person, not for a worker: released at once.
        delay = 0.0 if branch == "review" else bulk.release_delay(index)
        batches.setdefault(delay, {}).setdefault(branch, []).append(pk)
    retried = (JobStatus.FAILED, JobStatus.CANCELLED)
    moved: list[int] = []
    for delay, branches in sorted(batches.items()):
        release = now + timedelta(seconds=delay)
        countdown = delay or None
        # A later release counts as the job's last change, so the reconciler does not take
        # a step waiting for its batch for one whose message was lost.
        if ids := branches.get("plan"):
            done = Job.objects.filter(pk__in=ids).move(
                retried,
                JobStatus.QUEUED,
                error="",
                finished_at=None,
                takebacks=0,
                updated_at=release,
            )
            for pk in done:
                enqueue.plan_job(pk, countdown=countdown)
            moved += done
        if ids := branches.get("synthesize"):
            done = Job.objects.filter(pk__in=ids).move(
                retried,
                JobStatus.SYNTHESIZING,
                error="",
                finished_at=None,
                claimed_at=None,
                takebacks=0,
                updated_at=release,
            )
            for pk in done:
                enqueue.synthesize_job(pk, countdown=countdown)
            moved += done
        if ids := branches.get("review"):
            moved += _reopen(ids, open_subtasks, None, JobStatus.WAITING)
        if ids := branches.get("work"):
            moved += _reopen(ids, open_subtasks, release if delay else None, JobStatus.WORKING)
            enqueue.dispatch_ready(countdown=countdown)
    return moved


def _reopen(ids: list[int], open_subtasks: dict, release, resume: str) -> list[int]:
    """Their failed or cancelled subtasks back to waiting (until `release`, if given), the
    jobs back to `resume` (jobs/_reopen, for many)."""
    Subtask.objects.filter(pk__in=[pk for job in ids for pk in open_subtasks[job]]).move(
        SUBTASK_RETRYABLE,
        SubtaskStatus.WAITING,
        retry_count=0,
        takebacks=0,
        error="",
        next_attempt_at=release,
        finished_at=None,
    )
    review = resume == JobStatus.WAITING
    reason, waiting_for = (lifecycle.AWAITS_REVIEW, WaitingFor.REVIEW) if review else ("", "")
    return Job.objects.filter(pk__in=ids).move(
        (JobStatus.FAILED, JobStatus.CANCELLED),
        resume,
        error="",
        status_reason=reason,
        waiting_for=waiting_for,
        finished_at=None,
    )


RERUN_FIELDS = (
    "title",
    "description",
    "priority",
    "budget_tokens",
    "budget_cost",
    "review_plan",
    "tags",
    "template_id",
    "agent_versions",
)


def _rerun(ids: list[int], user) -> list[int]:
    """A fresh job for each (rerun_job), planned from the start; the new jobs' ids."""
    originals = Job.objects.filter(pk__in=ids).order_by("pk").values_list("pk", *RERUN_FIELDS)
    submitter = user if user is not None and user.pk else None
    made = Job.objects.bulk_create(
        Job(
            **dict(zip(RERUN_FIELDS, fields, strict=True)),
            rerun_of_id=pk,
            submitted_by=submitter,
        )
        for pk, *fields in originals
    )
    SharedState.objects.bulk_create(SharedState(job=job) for job in made)
    now = timezone.now()
    later: dict[float, list[int]] = {}
    for index, job in enumerate(made):
        signals.job_created(Job, job, created=True)  # bulk_create sends no post_save
        events.job_changed(job.pk, moved=True)
        delay = bulk.release_delay(index)
        enqueue.plan_job(job.pk, countdown=delay or None)
        if delay:
            later.setdefault(delay, []).append(job.pk)
    for delay, pks in later.items():  # as a retried job's: see _retry
        Job.objects.filter(pk__in=pks).update(updated_at=now + timedelta(seconds=delay))
    return [job.pk for job in made]


def rerun_job(job: Job, *, user=None) -> Job:
    """A fresh job with `job`'s title, description, priority, budgets, plan review, tags,
    template and pinned versions, marked as its re-run (`rerun_of`), planned from the start.
    Raises agents.rerun.RerunRefused unless `job` has finished."""
    require(user, "add_job")
    with transaction.atomic():
        status = Job.objects.select_for_update().values_list("status", flat=True).get(pk=job.pk)
        if status not in JOB_TERMINAL:
            raise rerun.RerunRefused(
                f"Job #{job.pk} is {status}: a whole job is re-run once it has finished "
                "(cancel it first, or re-run it from one of its steps)."
            )
        (new_id,) = _rerun([job.pk], user)
        new = Job.objects.get(pk=new_id)
        audit("rerun_job", actor=user, job=new, detail=f"Re-run of #{job.pk}")
    return new
