"""Take-backs: a step whose worker was lost, or whose run raised, goes back to the queue at
most STEP_MAX_TAKEBACKS times; the next loss fails it, saying why.

Without a bound, a step that crashes its worker every time (a tool that raises, an answer
the database refuses) was taken back and run again for ever. The count lives on the row
(`takebacks`); the exception of the run being taken back, if it raised one, too
(`last_crash`, written by `crashed` and cleared by each claim).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from . import lifecycle
from .models import Job, JobStatus, Subtask, SubtaskStatus
from .text import described

log = logging.getLogger(__name__)


def crashed(row: Job | Subtask, owner: str, exc: BaseException) -> None:
    """The step that `owner` runs on `row` raised: record why, and let its lease lapse now
    so the reconciler takes it back at its next pass. Only while the step is still this
    owner's (a job whose plan is written runs no step of its own any more)."""
    if isinstance(row, Subtask):
        rows = Subtask.objects.filter(status=SubtaskStatus.WORKING, attempts=row.attempts)
    else:
        rows = Job.objects.filter(
            status__in=(JobStatus.PLANNING, JobStatus.SYNTHESIZING), claimed_at__isnull=False
        )
    try:
        rows.filter(pk=row.pk, lease_owner=owner).update(
            last_crash=described(exc), lease_expires_at=timezone.now()
        )
    except Exception:  # the database itself may be what failed: the lease lapses anyway
        log.warning("could not record the crash of %s %s", type(row).__name__, row.pk)


def cause(takebacks: int, last_crash: str) -> str:
    """Why a step is failed instead of being taken back once more."""
    runs = takebacks + 1
    if last_crash:
        return f"Stopped after {runs} runs that did not finish; the last raised {last_crash}"
    return f"Stopped: worker lost {runs} times while running this step."


def take_back(lapsed: Q, lost_at) -> set[int]:
    """Take back every step whose lease lapsed, or fail those taken back too often already;
    the jobs whose subtasks failed here, to settle once this transaction commits."""
    bound = settings.STEP_MAX_TAKEBACKS
    again = {"takebacks": F("takebacks") + 1, "updated_at": lost_at}
    planning = Job.objects.filter(lapsed, status=JobStatus.PLANNING)
    planning.filter(takebacks__lt=bound).move(
        JobStatus.PLANNING, JobStatus.QUEUED, claimed_at=None, **again
    )
    synthesis = Job.objects.filter(lapsed, status=JobStatus.SYNTHESIZING, claimed_at__isnull=False)
    synthesis.filter(takebacks__lt=bound).release(JobStatus.SYNTHESIZING, **again)
    working = Subtask.objects.filter(lapsed, status=SubtaskStatus.WORKING)
    working.filter(takebacks__lt=bound).move(SubtaskStatus.WORKING, SubtaskStatus.QUEUED, **again)

    for job in (planning | synthesis).filter(takebacks__gte=bound):
        lifecycle.fail_job(job.pk, job.status, cause(job.takebacks, job.last_crash))
    settle = set()
    for sub in working.filter(takebacks__gte=bound):
        error = cause(sub.takebacks, sub.last_crash)
        if sub.transition(
            SubtaskStatus.WORKING, SubtaskStatus.FAILED, attempt=sub.attempts, error=error
        ):
            settle.add(sub.job_id)
    return settle
