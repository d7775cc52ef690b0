"""Recovery: re-dispatch work that a dead worker or a lost broker message left behind."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import dispatch, enqueue, jobs
from .models import (
    SUBTASK_IN_FLIGHT,
    Agent,
    AuditEntry,
    Job,
    JobStatus,
    Subtask,
    SubtaskStatus,
)

log = logging.getLogger(__name__)
RECONCILE_BATCH = 500


def _resend(rows, send, now, what: str) -> int:
    """Send each row's step again and record it; bumping updated_at spaces the resends."""
    ids = list(rows.values_list("pk", flat=True)[:RECONCILE_BATCH])
    if not ids:
        return 0
    rows.model.objects.filter(pk__in=ids).update(updated_at=now)
    if rows.model is Subtask:
        Subtask.objects.filter(pk__in=ids).update(redispatches=F("redispatches") + 1)
        entries = [AuditEntry(action="redispatch", subtask_id=pk, detail=what) for pk in ids]
        job_of = dict(Subtask.objects.filter(pk__in=ids).values_list("pk", "job_id"))
        for entry in entries:
            entry.job_id = job_of[entry.subtask_id]
    else:
        entries = [AuditEntry(action="redispatch", job_id=pk, detail=what) for pk in ids]
    AuditEntry.objects.bulk_create(entries)
    for pk in ids:
        send(pk)
    return len(ids)


def reconcile() -> dict[str, int]:
    """Re-dispatch work whose status says queued or working but that no worker holds.

    Safe to run anywhere, any time: every re-dispatched message meets a conditional claim,
    and a completed subtask is never claimed again.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RECONCILE_AFTER_S)
    # Messages that may simply be lost (a broker restart) are re-sent sooner: a duplicate of
    # a queued message is harmless, it loses the claim.
    lost = now - timedelta(seconds=min(15.0, settings.RECONCILE_AFTER_S))
    counts = {}
    with transaction.atomic():
        # Every move here goes through the bulk transitions, so open pages see it.
        unplanned = Job.objects.filter(planned_at__isnull=True)
        if (
            unplanned.filter(status=JobStatus.WAITING).exists()
            and Agent.objects.orchestrator() is not None
        ):
            unplanned.move(JobStatus.WAITING, JobStatus.QUEUED, status_reason="", updated_at=stale)
        # A worker that died mid-step left its claim behind: release it.
        Job.objects.filter(claimed_at__lt=stale).move(
            JobStatus.PLANNING, JobStatus.QUEUED, claimed_at=None, updated_at=stale
        )
        Job.objects.filter(status=JobStatus.SYNTHESIZING, claimed_at__lt=stale).update(
            claimed_at=None, updated_at=stale
        )
        Subtask.objects.filter(started_at__lt=stale).move(
            SubtaskStatus.WORKING, SubtaskStatus.QUEUED, updated_at=stale
        )
        counts["plans"] = _resend(
            Job.objects.filter(status=JobStatus.QUEUED, updated_at__lt=lost),
            enqueue.plan_job,
            now,
            "planning re-sent: no worker took it",
        )
        counts["syntheses"] = _resend(
            Job.objects.filter(
                status=JobStatus.SYNTHESIZING, claimed_at__isnull=True, updated_at__lt=lost
            ),
            enqueue.synthesize_job,
            now,
            "synthesis re-sent: no worker took it",
        )
        counts["subtasks"] = _resend(
            Subtask.objects.filter(status=SubtaskStatus.QUEUED, updated_at__lt=lost),
            enqueue.run_subtask,
            now,
            "subtask re-sent: no worker finished it",
        )
    open_statuses = (SubtaskStatus.WAITING, *SUBTASK_IN_FLIGHT)
    unsettled = Job.objects.filter(status=JobStatus.WORKING).exclude(
        subtasks__status__in=open_statuses
    )
    for job_id in unsettled.values_list("pk", flat=True)[:RECONCILE_BATCH]:
        jobs.settle_job_locked(job_id)
    dispatch.resume_jobs_waiting_for_agents()  # an agent enabled some other way (admin)
    dispatch.dispatch_ready()
    if any(counts.values()):
        log.info("reconcile re-dispatched %s", counts)
    return counts
