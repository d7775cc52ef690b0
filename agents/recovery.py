"""Recovery: re-dispatch work that a dead worker or a lost broker message left behind."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from . import (
    approvals,
    dispatch,
    enqueue,
    idempotency,
    leases,
    lifecycle,
    limiter,
    process,
    stats,
    takebacks,
    telemetry,
)
from .audit import audit_system
from .models import (
    SUBTASK_OPEN,
    Agent,
    Job,
    JobStatus,
    LLMCall,
    Subtask,
    SubtaskStatus,
    WaitingFor,
)
from .outbox import relay_stale

log = logging.getLogger(__name__)
RECONCILE_BATCH = 500
# Other apps' recovery, run at the end of each pass (agents imports none of them).
_pass_hooks: dict[str, Callable[[], int]] = {}


def on_pass(kind: str, hook: Callable[[], int]) -> None:
    """Run `hook` at the end of every reconcile pass; what it returns is counted as `kind`."""
    _pass_hooks[kind] = hook


on_pass("idempotency_keys", idempotency.purge_expired)  # keys past their TTL


def _roll_up() -> int:
    stats.roll_up()
    return 0  # folding closed minutes into the overview's buckets is routine: not counted


on_pass("stats", _roll_up)


def _holders_gone() -> list[str]:
    """Lease holders on this host whose process is gone: their leases lapse at once."""
    held = Q(status__in=(JobStatus.PLANNING, JobStatus.SYNTHESIZING), claimed_at__isnull=False)
    holders = {
        *Job.objects.filter(held).values_list("lease_owner", flat=True).distinct(),
        *Subtask.objects.filter(status=SubtaskStatus.WORKING)
        .values_list("lease_owner", flat=True)
        .distinct(),
    }
    return [h for h in holders if h and process.is_gone(h)]


def _longest_recent_call_s() -> float:
    """How long a call a dead worker started may still run at the provider: the longest of
    the last minutes' calls, with a margin (its limiter slot stays taken that long)."""
    since = timezone.now() - timedelta(minutes=5)
    longest = LLMCall.objects.filter(created_at__gte=since).aggregate(s=Max("latency_s"))["s"]
    if longest is None:
        return float(settings.LLM_TIMEOUT_S)
    return min(float(settings.LLM_TIMEOUT_S), 1.5 * longest + 0.25)


def _resend(rows, send, now, what: str) -> int:
    """Send each row's step again and record it; bumping updated_at spaces the resends."""
    ids = list(rows.values_list("pk", flat=True)[:RECONCILE_BATCH])
    if not ids:
        return 0
    rows.model.objects.filter(pk__in=ids).update(updated_at=now)
    if rows.model is Subtask:
        Subtask.objects.filter(pk__in=ids).update(redispatches=F("redispatches") + 1)
        job_of = dict(Subtask.objects.filter(pk__in=ids).values_list("pk", "job_id"))
        targets = [{"subtask_id": pk, "job_id": job_of[pk]} for pk in ids]
    else:
        targets = [{"job_id": pk} for pk in ids]
    audit_system("redispatch", targets, what)
    for pk in ids:
        send(pk)
    return len(ids)


def reconcile() -> dict[str, int]:
    """Take back work whose lease lapsed, and re-send queued work that no worker took.

    Safe to run anywhere, any time: every re-dispatched message meets a conditional claim,
    and a completed subtask is never claimed again.
    """
    now = timezone.now()
    # Queued work nobody claimed within a lease may have lost its message (a broker restart).
    # A duplicate of a queued message is harmless: it loses the claim.
    lost = orphaned = now - timedelta(seconds=settings.LEASE_S)
    workers_gone = leases.workers_gone()
    gone = [*_holders_gone(), *workers_gone]
    if workers_gone:
        # A dead worker may have taken messages with it (the subtask a thread kept to run
        # next has none): send queued subtasks and syntheses again now. There are few (dispatch
        # queues no more than the agents can take), and a duplicate loses the claim.
        # Up to now: a step queued a moment before the worker died may be in its hands too,
        # and once the worker is forgotten nothing else would re-send it before LEASE_S.
        orphaned = now
        log.warning("workers gone: %s", ", ".join(workers_gone))
    broker_lost = not leases.broker_intact()
    if broker_lost:
        # Redis lost its data, the broker's queue with it: every queued step is sent again.
        lost = orphaned = now - timedelta(seconds=1)
    lapsed = (
        Q(lease_expires_at__lt=now)
        | Q(lease_owner__in=gone)
        | Q(lease_expires_at__isnull=True, updated_at__lt=lost)  # claimed before leases
    )
    counts = {}
    with transaction.atomic():
        # Every move here goes through the bulk transitions, so open pages see it.
        unplanned = Job.objects.filter(
            status=JobStatus.WAITING, waiting_for=WaitingFor.ORCHESTRATOR
        )
        if unplanned.exists() and Agent.objects.orchestrator() is not None:
            unplanned.move(JobStatus.WAITING, JobStatus.QUEUED, status_reason="", updated_at=lost)
        # A worker that died mid-step stopped renewing its lease: take the step back, or
        # fail it when it was taken back too often (it crashes whoever runs it).
        unsettled_by_failure = takebacks.take_back(lapsed, lost)
        counts["plans"] = _resend(
            Job.objects.filter(status=JobStatus.QUEUED, updated_at__lte=lost),
            enqueue.plan_job,
            now,
            "planning re-sent: no worker took it",
        )
        counts["syntheses"] = _resend(
            Job.objects.filter(
                status=JobStatus.SYNTHESIZING, claimed_at__isnull=True, updated_at__lte=orphaned
            ),
            enqueue.synthesize_job,
            now,
            "synthesis re-sent: no worker took it",
        )
        counts["subtasks"] = _resend(
            Subtask.objects.filter(status=SubtaskStatus.QUEUED, updated_at__lte=orphaned),
            enqueue.run_subtask,
            now,
            "subtask re-sent: no worker finished it",
        )
    # Acted on: the re-sends are committed.
    for job_id in unsettled_by_failure:
        lifecycle.settle_job_locked(job_id)
    leases.forget_workers(workers_gone)
    if broker_lost:
        leases.mark_broker_intact()
    counts["slots"] = limiter.reap(process.is_gone, _longest_recent_call_s)
    # Steps awaiting approval hold no lease (nothing above touches them): only a timeout
    # moves them on, by its default action.
    if settings.APPROVAL_TIMEOUT_S:
        approvals.expire(now)
    unsettled = Job.objects.filter(status=JobStatus.WORKING).exclude(
        subtasks__status__in=SUBTASK_OPEN
    )
    for job_id in unsettled.values_list("pk", flat=True)[:RECONCILE_BATCH]:
        lifecycle.settle_job_locked(job_id)
    dispatch.resume_jobs_waiting_for_agents()  # an agent enabled some other way (admin)
    dispatch.dispatch_ready()
    counts["events"] = relay_stale()  # left by a process killed before it relayed them
    for kind, hook in _pass_hooks.items():
        try:
            counts[kind] = hook()
        except Exception:  # one app's recovery must not stop the next pass's
            log.exception("the %s recovery failed", kind)
    telemetry.redispatched(counts)
    if any(counts.values()):
        log.info("reconcile re-dispatched %s", counts)
    return counts
