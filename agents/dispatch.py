"""Dispatch: every runnable subtask to the best agent with capacity, one pass at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from . import coalesce, enqueue, hotpath, lifecycle, quality
from .allocation import Candidate, QualityRule, choose
from .models import SUBTASK_OPEN, Agent, Job, JobStatus, Subtask, SubtaskStatus, WaitingFor

NO_AGENT = "No agent is enabled: waiting until one is."
NO_SPECIALIST = (
    "No enabled agent may run some of its subtasks (the orchestrator runs only subtasks of "
    "its own specialties): waiting until one is enabled."
)
DISPATCH_BATCH = 500


# An enabled agent as the allocator sees it, with its `load` (in-flight subtasks).
CANDIDATE_FIELDS = (
    "pk",
    "slug",
    "specialties",
    "completed_count",
    "failed_count",
    "avg_latency_s",
    "load",
    "max_concurrency",
)


def _candidates(rows: list[tuple]) -> dict[int, Candidate]:
    return {
        pk: Candidate(
            id=pk,
            slug=slug,
            specialties=tuple(specialties),
            completed=completed,
            failed=failed,
            avg_latency_s=avg_latency_s,
            load=load,
            max_concurrency=max_concurrency,
        )
        for pk, slug, specialties, completed, failed, avg_latency_s, load, max_concurrency in rows
    }


def dispatch_ready() -> int:
    """Assign every runnable waiting subtask to an agent with capacity; return how many.

    One pass runs at a time across all workers, so no agent is ever overbooked; a caller
    that finds a pass running leaves it a mark to go round again (agents.coalesce).
    """
    return _dispatch(keep=0)[0]


def dispatch_and_take() -> Subtask | int | None:
    """dispatch_ready, keeping one of the subtasks it assigned for the caller to run.

    The caller (a worker thread that just freed a slot) runs it at once: no broker message
    for it. On PostgreSQL the pass claims it for the caller in the statement that assigns
    it (agents.hotpath.claim: the subtask, its job and agent); otherwise it is queued and its
    id returned, for the caller's own claim. Should the caller die first, its lease lapses
    (claimed) or the subtask says queued, and the reconciler takes it back as it would a
    lost message.
    """
    kept = _dispatch(keep=1)[1]
    return kept[0] if kept else None


# One pass at a time in this process: a thread that finds one running leaves the mark and
# returns, without a transaction of its own to learn that the database's lock is taken.
_process_pass = threading.Lock()


def _dispatch(keep: int) -> tuple[int, list[Subtask | int]]:
    coalesce.mark_dirty()
    assigned, kept = 0, []
    if not _process_pass.acquire(blocking=False):
        return assigned, kept
    try:
        while True:
            settle: set[int] = set()
            with _exclusive_reads(timezone.now()) as reads:
                if reads is None:
                    return assigned, kept
                coalesce.take_dirty()
                assigned += _dispatch_pass(*reads, settle, kept, keep)
            # After the pass has committed: a job's row lock is never taken under subtask
            # locks.
            for job_id in settle:
                lifecycle.settle_job_locked(job_id)
            if not coalesce.take_dirty():
                return assigned, kept
    finally:
        _process_pass.release()


@contextmanager
def _exclusive_reads(now: datetime) -> Iterator[tuple[list, list] | None]:
    """The pass's lock, and what the pass reads under it: the enabled agents with their load
    (CANDIDATE_FIELDS) and the runnable subtasks (`_runnable_rows`); None when another pass runs.

    PostgreSQL, outside a caller's transaction: one statement takes the lock for the session
    and reads both (agents.hotpath.locked_reads), the pass's writes commit each on its own,
    and the lock is given back after them. Elsewhere, agents.coalesce.exclusive_pass.
    """
    if hotpath.available() and not connection.in_atomic_block:
        reads = hotpath.locked_reads(coalesce.LOCK_ID, _pass_reads, now)
        if reads is None:
            yield None
            return
        try:
            yield sorted(map(tuple, reads[0])), sorted(map(tuple, reads[1]))
        finally:
            hotpath.unlock(coalesce.LOCK_ID)
        return
    with coalesce.exclusive_pass() as exclusive:
        yield tuple(list(rows) for rows in _pass_reads(now)) if exclusive else None


def _pass_reads(now: datetime) -> list[QuerySet]:
    """What a pass reads: the enabled agents with their load (CANDIDATE_FIELDS), and the
    runnable subtasks (`_runnable_rows`)."""
    agents = Agent.objects.filter(enabled=True).with_load().order_by("pk")
    return [agents.values_list(*CANDIDATE_FIELDS), _runnable_rows(now)]


def _dispatch_pass(
    agents: list[tuple],
    runnable: list[tuple],
    settle: set[int],
    kept: list[Subtask | int],
    keep: int,
) -> int:
    """Highest job priority first (0 highest), FIFO within a priority.

    Adds to `settle` the jobs whose subtasks failed here for a failed dependency, and to
    `kept`, up to `keep` of them, subtasks queued for the caller instead of a message.
    """
    assigned = 0
    if not agents:
        _wait_for_agents()
        return 0
    candidates = _candidates(agents)
    if not any(c.load < c.max_concurrency for c in candidates.values()):
        return 0
    # Per (agent, specialty): read at most once every QUALITY_CACHE_S by this process.
    qualities = quality.recent()
    rule = QualityRule(settings.QUALITY_WEIGHT, settings.QUALITY_MIN_SAMPLES)
    full_types: set[str] = set()
    nobody_types: set[str] = set()  # types no enabled agent may run, at any load
    stranded: set[int] = set()
    queue: list[tuple[int, int, dict]] = []  # PostgreSQL: queued together, in one UPDATE
    for _, job_id, pk, type_, hint, lost in runnable:
        if lost:
            sub = Subtask(pk=pk, job_id=job_id)
            if sub.transition(
                SubtaskStatus.WAITING, SubtaskStatus.FAILED, error="dependency failed"
            ):
                settle.add(job_id)
            continue
        if not any(c.load < c.max_concurrency for c in candidates.values()):
            break
        if type_ in nobody_types:
            stranded.add(job_id)
            continue
        if type_ in full_types and not hint:
            continue
        chosen, reasons = choose(type_, candidates.values(), hint, qualities=qualities, rule=rule)
        if chosen is None:
            if reasons["eligible"]:
                full_types.add(type_)
            else:
                nobody_types.add(type_)
                stranded.add(job_id)
            continue
        if len(kept) < keep:
            taken = hotpath.claim(pk, agent_id=chosen.id, allocation=reasons)
            if taken is not None:
                candidates[chosen.id] = replace(chosen, load=chosen.load + 1)
                assigned += 1
                kept.append(taken)
                continue
        if hotpath.available() and len(kept) >= keep:
            # Counted now; the UPDATE of them all, after the loop, confirms (a row that
            # moved meanwhile only makes this pass assign less).
            queue.append((pk, chosen.id, reasons))
            candidates[chosen.id] = replace(chosen, load=chosen.load + 1)
            continue
        sub = Subtask(pk=pk, job_id=job_id)  # only for its transition: most rows get none
        if sub.transition(
            SubtaskStatus.WAITING,
            SubtaskStatus.QUEUED,
            agent_id=chosen.id,
            allocation=reasons,
            next_attempt_at=None,
        ):
            candidates[chosen.id] = replace(chosen, load=chosen.load + 1)
            assigned += 1
            if len(kept) < keep:
                kept.append(pk)
            else:
                enqueue.run_subtask(pk)
    for pk in hotpath.queue(queue) if queue else ():
        assigned += 1
        enqueue.run_subtask(pk)
    if stranded:
        Job.objects.filter(pk__in=stranded).move(
            JobStatus.WORKING,
            JobStatus.WAITING,
            waiting_for=WaitingFor.SPECIALIST,
            status_reason=NO_SPECIALIST,
        )
    return assigned


def _runnable_rows(now: datetime) -> QuerySet:
    """Waiting subtasks of working jobs whose dependencies are all done (or one is lost),
    in dispatch order: (priority, job id, id, type, assign hint, a dependency was lost), led
    by their order so that rows read unordered sort back into it.

    Plain tuples: a large backlog is read on every pass, and most of it is not assigned.
    """
    deps = Subtask.depends_on.through.objects.filter(from_subtask=OuterRef("pk"))
    open_statuses = SUBTASK_OPEN  # an upstream step awaiting approval holds its dependents
    lost_statuses = (SubtaskStatus.FAILED, SubtaskStatus.CANCELLED)
    return (
        Subtask.objects.filter(status=SubtaskStatus.WAITING, job__status=JobStatus.WORKING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .annotate(lost=Exists(deps.filter(to_subtask__status__in=lost_statuses)))
        .filter(Q(lost=True) | ~Exists(deps.filter(to_subtask__status__in=open_statuses)))
        .order_by("priority", "job_id", "pk")
        .values_list("priority", "job_id", "pk", "type", "assign_hint", "lost")[:DISPATCH_BATCH]
    )


def _wait_for_agents() -> None:
    """With no agent enabled at all, running jobs wait, saying why."""
    agentless = Job.objects.filter(
        status=JobStatus.WORKING, subtasks__status=SubtaskStatus.WAITING
    ).distinct()
    agentless.move(
        JobStatus.WORKING, JobStatus.WAITING, waiting_for=WaitingFor.AGENT, status_reason=NO_AGENT
    )


def resume_jobs_waiting_for_agents() -> None:
    """Jobs that waited for an agent go back to work once one that may run them is enabled:
    any agent for WaitingFor.AGENT; for SPECIALIST, any but the orchestrator, or an
    orchestrator with the type of one of the job's waiting subtasks."""
    enabled = list(Agent.objects.filter(enabled=True).only("specialties"))
    if not enabled:
        return
    waiting = Job.objects.filter(status=JobStatus.WAITING)
    waiting.filter(waiting_for=WaitingFor.AGENT).move(
        JobStatus.WAITING, JobStatus.WORKING, status_reason=""
    )
    stranded = waiting.filter(waiting_for=WaitingFor.SPECIALIST)
    if all(agent.is_orchestrator for agent in enabled):
        kinds = {kind for agent in enabled for kind in agent.specialties}
        runnable = Subtask.objects.filter(status=SubtaskStatus.WAITING, type__in=kinds)
        stranded = stranded.filter(pk__in=runnable.values("job_id"))
    stranded.move(JobStatus.WAITING, JobStatus.WORKING, status_reason="")
