"""Submitting, editing (in the admin), cancelling and retrying jobs and subtasks."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .. import dispatch, enqueue, events, lifecycle
from ..audit import audit
from ..models import (
    JOB_TERMINAL,
    SUBTASK_RETRYABLE,
    Job,
    JobStatus,
    SharedState,
    Subtask,
    SubtaskStatus,
    WaitingFor,
)
from ..tags import as_text


def submit_job(
    *,
    title: str,
    description: str,
    priority: int = 5,
    user=None,
    budget_tokens: int | None = None,
    budget_cost: Decimal | None = None,
    review_plan: bool = False,
    submit_token: uuid.UUID | None = None,
    tags: list[str] | tuple[str, ...] = (),
    template=None,
    agent_versions: dict | None = None,
    check_limit: bool = True,
) -> Job:
    """Create the job and ask for its plan. The same `submit_token` twice gives one job.

    `tags` come parsed (agents.tags.parse); `template` is the JobTemplate it was made from.
    A schedule's run passes check_limit=False: the schedule, not a person, submits it.

    Raises SubmissionLimit when `user` has submitted JOB_SUBMISSIONS_PER_HOUR jobs in the
    last hour.
    """
    if submit_token and (existing := Job.objects.filter(submit_token=submit_token).first()):
        return existing
    if check_limit:
        _check_submission_limit(user)
    try:
        return _create_job(
            title=title,
            description=description,
            priority=priority,
            submitted_by=user,
            budget_tokens=budget_tokens,
            budget_cost=budget_cost,
            review_plan=review_plan,
            submit_token=submit_token,
            tags=as_text(list(tags)),
            template=template,
            agent_versions=agent_versions or {},
        )
    except IntegrityError:  # the same form, posted twice at once: the other one won
        return Job.objects.get(submit_token=submit_token)


class SubmissionLimit(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the hour has room for one more


def _check_submission_limit(user) -> None:
    limit = settings.JOB_SUBMISSIONS_PER_HOUR
    if user is None or not limit:
        return
    now = timezone.now()
    recent = Job.objects.filter(  # an experiment's case jobs are not the user's submissions
        submitted_by=user, created_at__gte=now - timedelta(hours=1), experiment_case__isnull=True
    )
    if recent.count() >= limit:
        # Room comes back when the limit-th newest submission leaves the hour.
        leaving = recent.order_by("-created_at").values_list("created_at", flat=True)[limit - 1]
        wait = leaving + timedelta(hours=1) - now
        raise SubmissionLimit(
            f"You have submitted {limit} jobs in the last hour, the most allowed "
            "(JOB_SUBMISSIONS_PER_HOUR). Try again later, or ask an admin to raise it.",
            retry_after=max(1, math.ceil(wait.total_seconds())),
        )


def _create_job(**fields) -> Job:
    user = fields["submitted_by"]
    with transaction.atomic():
        job = Job.objects.create(**fields)
        SharedState.objects.create(job=job)
        audit("submit", actor=user, job=job, detail=job.title)
        events.job_changed(job.pk, moved=True)
        enqueue.plan_job(job.pk)
    return job


def edit_job(job: Job, fields: dict, *, user=None) -> list[str]:
    """Save what changed of a job's own fields (title, priority, budgets...; never its
    status, which only transitions move), audited once naming them; the names changed."""
    return _edit_fields(job, fields, "edit_job", user=user, job=job)


def edit_subtask_fields(sub: Subtask, fields: dict, *, user=None) -> list[str]:
    """The same for a subtask's own fields (its description, type, agent, retries...)."""
    return _edit_fields(sub, fields, "edit_subtask", user=user, job=sub.job, subtask=sub)


def _edit_fields(row, fields: dict, action: str, *, user, **about) -> list[str]:
    with transaction.atomic():
        locked = type(row).objects.select_for_update().get(pk=row.pk)
        changed = [name for name, value in fields.items() if getattr(locked, name) != value]
        if not changed:
            return []
        for name in changed:
            setattr(locked, name, fields[name])
        locked.save(update_fields=[*changed, "updated_at"])
        audit(action, actor=user, detail=", ".join(changed), **about)
        if "subtask" in about:
            events.subtask_changed(locked.pk, about["job"].pk)
        events.job_changed(about["job"].pk)
    return changed


def cancel_job(job: Job, *, user=None) -> bool:
    """Running calls finish; nothing new starts; the job ends cancelled."""
    if not job.can_cancel:
        return False
    with transaction.atomic():
        # end_job checks again under the job's row lock: another may have ended it since.
        if not lifecycle.end_job(job.pk, JobStatus.CANCELLED, "Cancelled by an operator."):
            return False
        audit("cancel", actor=user, job=job)
    return True


def _downstream(sub: Subtask) -> set[int]:
    """The subtask and every subtask that depends on it, transitively."""
    found, frontier = {sub.pk}, {sub.pk}
    while frontier:
        frontier = (
            set(Subtask.objects.filter(depends_on__in=frontier).values_list("pk", flat=True))
            - found
        )
        found |= frontier
    return found


def _reopen(job: Job, subtask_ids: set[int], resume: str = JobStatus.WORKING) -> int:
    """Failed or cancelled subtasks back to waiting, with their retries restored; a
    finished job back to `resume`."""
    reopened = Subtask.objects.filter(pk__in=subtask_ids).move(
        SUBTASK_RETRYABLE,
        SubtaskStatus.WAITING,
        retry_count=0,
        takebacks=0,
        error="",
        next_attempt_at=None,
        finished_at=None,
    )
    if job.status in JOB_TERMINAL:
        review = resume == JobStatus.WAITING
        reason, waiting_for = (lifecycle.AWAITS_REVIEW, WaitingFor.REVIEW) if review else ("", "")
        job.transition(
            job.status,
            resume,
            error="",
            status_reason=reason,
            waiting_for=waiting_for,
            finished_at=None,
        )
    events.job_changed(job.pk, moved=True)
    return len(reopened)


def retry_subtask(sub: Subtask, *, user=None) -> bool:
    """Run a failed subtask again, and what failed because of it; completed work stays."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=sub.job_id)
        sub = Subtask.objects.filter(pk=sub.pk).first()
        if sub is None:  # deleted from the plan meanwhile
            return False
        sub.job = job  # the locked row: can_retry reads its status
        if not sub.can_retry:
            return False
        _reopen(job, _downstream(sub))
        audit("retry_subtask", actor=user, job=job, subtask=sub, detail=sub.key)
    dispatch.dispatch_ready()
    return True


def retry_job(job: Job, *, user=None) -> bool:
    """Resume a failed or cancelled job from where it stopped."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not job.can_retry:
            return False
        open_subtasks = job.subtasks.filter(~Q(status=SubtaskStatus.COMPLETED))
        if job.planned_at is None:
            job.transition(job.status, JobStatus.QUEUED, error="", finished_at=None, takebacks=0)
            enqueue.plan_job(job.pk)
        elif not open_subtasks.exists():
            job.transition(
                job.status,
                JobStatus.SYNTHESIZING,
                error="",
                finished_at=None,
                claimed_at=None,
                takebacks=0,
            )
            enqueue.synthesize_job(job.pk)
        elif job.review_plan and not job.audit.filter(action="approve_plan").exists():
            # Stopped before anyone approved its plan: it goes back to review, not to work.
            _reopen(job, set(open_subtasks.values_list("pk", flat=True)), JobStatus.WAITING)
        else:
            _reopen(job, set(open_subtasks.values_list("pk", flat=True)))
            enqueue.dispatch_ready()
        audit("retry_job", actor=user, job=job)
        events.job_changed(job.pk, moved=True)
    return True
