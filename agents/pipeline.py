"""The steps of a job: plan, dispatch, run a subtask, settle, synthesise.

Each step loads rows by id, claims its work with a conditional status update, and is safe
to run twice. The order lives in the database (the subtask DAG), not in Celery chains.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from . import coalesce, events, llm, metrics, planning, state, tasks
from .allocation import Candidate, choose
from .models import (
    SUBTASK_IN_FLIGHT,
    Agent,
    Job,
    JobStatus,
    LLMCall,
    ModelPrice,
    Subtask,
    SubtaskStatus,
    add_usage,
)

log = logging.getLogger(__name__)

PLAN_TEMPERATURE = 0.3
MAX_STEP_RETRIES = 3
# 429s pause a subtask without using up its retries, but not forever.
MAX_RATE_LIMIT_PAUSES = 20
BUDGET_EXCEEDED = "budget exceeded"
NO_AGENT = "No agent is enabled: waiting until one is."
DISPATCH_BATCH = 500
RECONCILE_BATCH = 500


class BudgetExceeded(Exception):
    pass


def call_llm(
    *,
    agent: Agent,
    job_id: int,
    purpose: str,
    messages: list[dict],
    subtask_id: int | None = None,
    temperature: float | None = None,
    on_start=None,
    budgeted: bool = True,
) -> LLMCall:
    """One attempt, recorded as an LLMCall row whether it succeeds or not; returns the row.

    Raises BudgetExceeded, before any call, once the job has spent its budget (checked
    unless the caller knows the job has none).
    """
    if budgeted:
        spent = Job.objects.only("total_tokens", "total_cost", "budget_tokens", "budget_cost")
        if spent.get(pk=job_id).over_budget():
            raise BudgetExceeded
    call = LLMCall(
        agent=agent,
        job_id=job_id,
        subtask_id=subtask_id,
        purpose=purpose,
        model=agent.model,
        messages=messages,
    )
    try:
        completion = llm.complete(
            model=agent.model,
            messages=messages,
            temperature=agent.temperature if temperature is None else temperature,
            max_tokens=agent.max_tokens,
            on_start=on_start,
        )
    except llm.LLMError as exc:
        call.error, call.http_status, call.latency_s = str(exc), exc.status, exc.latency_s
        call.save()
        raise
    call.response = completion.text
    call.prompt_tokens = completion.prompt_tokens
    call.completion_tokens = completion.completion_tokens
    call.latency_s = completion.latency_s
    call.http_status = completion.http_status
    call.finish_reason = completion.finish_reason
    if completion.http_status is not None:  # the offline model costs nothing
        call.cost = ModelPrice.cost_of(
            agent.model, completion.prompt_tokens, completion.completion_tokens
        )
    call.save()
    add_usage(call)
    return call


def _retry_later(task, job_id: int, failures: int, exc: llm.LLMError) -> bool:
    """Schedule another try of a job-level step; False when retries are spent."""
    if exc.permanent or failures > MAX_STEP_RETRIES:
        return False
    delay = (
        exc.retry_after if exc.rate_limited and exc.retry_after else metrics.retry_delay(failures)
    )
    transaction.on_commit(lambda: task.apply_async((job_id,), countdown=delay))
    return True


def _failed_calls(job: Job, purpose: str, exc: llm.LLMError) -> int:
    """Failures that use up a step's retries; 429s pause the step, up to their own cap."""
    failed = job.calls.filter(purpose=purpose).exclude(error="")
    if exc.rate_limited:
        return max(0, failed.count() - MAX_RATE_LIMIT_PAUSES)
    return failed.exclude(http_status=429).count()


def plan_job(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return
    if job.planned_at:  # a redelivered message after the plan was written
        dispatch_ready()
        return
    if not job.transition(JobStatus.QUEUED, JobStatus.PLANNING, claimed_at=timezone.now()):
        return  # another worker holds the planning step
    events.job_changed(job.pk, moved=True)

    orchestrator = Agent.objects.orchestrator()
    if orchestrator is None:
        job.transition(
            JobStatus.PLANNING,
            JobStatus.WAITING,
            status_reason="Waiting for an enabled orchestrator agent to plan this job.",
        )
        events.job_changed(job.pk, moved=True)
        return
    team = [(a.slug, a.specialties) for a in Agent.objects.specialists()]
    limit = settings.PLAN_MAX_SUBTASKS
    messages = planning.decomposition_messages(job.title, job.description, team, limit)
    try:
        answer = call_llm(
            agent=orchestrator,
            job_id=job.pk,
            purpose=LLMCall.Purpose.PLAN,
            messages=messages,
            temperature=PLAN_TEMPERATURE,
        )
        try:
            plan = planning.parse_plan(answer.response, max_subtasks=limit)
        except planning.PlanError as first:
            # One repair round-trip: tell the model what was wrong.
            messages = planning.repair_messages(messages, answer.response, str(first))
            answer = call_llm(
                agent=orchestrator,
                job_id=job.pk,
                purpose=LLMCall.Purpose.PLAN,
                messages=messages,
                temperature=PLAN_TEMPERATURE,
            )
            plan = planning.parse_plan(answer.response, max_subtasks=limit)
    except planning.PlanError as exc:
        _fail_job(job, JobStatus.PLANNING, f"The plan could not be used after one repair: {exc}")
        return
    except BudgetExceeded:
        end_job(job.pk, JobStatus.FAILED, BUDGET_EXCEEDED)
        return
    except llm.LLMError as exc:
        with transaction.atomic():
            if _retry_later(tasks.plan_job, job.pk, _failed_calls(job, "plan", exc), exc):
                job.transition(JobStatus.PLANNING, JobStatus.QUEUED, status_reason=str(exc)[:300])
            else:
                _fail_job(job, JobStatus.PLANNING, f"Planning failed: {exc}")
            events.job_changed(job.pk, moved=True)
        return

    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.planned_at or locked.status != JobStatus.PLANNING:
            return
        created = {
            p.key: Subtask.objects.create(
                job=job,
                key=p.key,
                type=p.type,
                payload=p.payload,
                assign_hint=p.assign_to,
                priority=job.priority,
            )
            for p in plan.subtasks
        }
        for p in plan.subtasks:
            created[p.key].depends_on.set([created[d] for d in p.depends_on])
        pending = [
            {"id": p.key, "type": p.type, "description": p.description, "depends_on": p.depends_on}
            for p in plan.subtasks
        ]
        state.write(job.pk, {"pending_tasks": pending}, author=f"{orchestrator.slug}/plan")
        notes = "; ".join(plan.notes)
        if job.review_plan:
            notes = "The plan awaits an operator's review. " + notes
        job.transition(
            JobStatus.PLANNING,
            JobStatus.WAITING if job.review_plan else JobStatus.WORKING,
            planned_at=timezone.now(),
            claimed_at=None,
            status_reason=notes.strip()[:300],
        )
        events.job_changed(job.pk, moved=True)
    dispatch_ready()


def _fail_job(job: Job, expected: str, error: str) -> None:
    if job.transition(expected, JobStatus.FAILED, error=error, claimed_at=None):
        events.job_changed(job.pk, moved=True)


def end_job(job_id: int, status: str, error: str) -> bool:
    """End a job early (cancelled, or failed on its budget), keeping what it has.

    Calls in flight finish and keep their results; nothing new starts: every waiting or
    queued subtask is cancelled, and a queued message meets a claim that no longer holds.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_terminal or not job.transition(job.status, status, error=error):
            return False
        stopped = list(
            job.subtasks.filter(
                status__in=(SubtaskStatus.WAITING, SubtaskStatus.QUEUED)
            ).values_list("pk", flat=True)
        )
        Subtask.objects.filter(pk__in=stopped).update(
            status=SubtaskStatus.CANCELLED, error=error, finished_at=timezone.now()
        )
        for pk in stopped:
            events.subtask_changed(pk)
        events.job_changed(job_id, moved=True)
    return True


def _candidates(agents: list[Agent]) -> dict[int, Candidate]:
    load = dict(
        Subtask.objects.filter(agent__in=agents, status__in=SUBTASK_IN_FLIGHT)
        .values_list("agent")
        .annotate(n=Count("id"))
    )
    return {
        a.pk: Candidate(
            id=a.pk,
            slug=a.slug,
            specialties=tuple(a.specialties),
            completed=a.completed_count,
            failed=a.failed_count,
            avg_latency_s=a.avg_latency_s,
            load=load.get(a.pk, 0),
            max_concurrency=a.max_concurrency,
        )
        for a in agents
    }


def dispatch_ready() -> int:
    """Assign every runnable waiting subtask to an agent with capacity; return how many.

    One pass runs at a time across all workers, so no agent is ever overbooked; a caller
    that finds a pass running leaves it a mark to go round again (agents.coalesce).
    """
    coalesce.mark_dirty()
    assigned = 0
    while True:
        with coalesce.exclusive_pass() as exclusive:
            if not exclusive:
                return assigned
            coalesce.take_dirty()
            assigned += _dispatch_pass()
        if not coalesce.take_dirty():
            return assigned


def _dispatch_pass() -> int:
    """Highest job priority first (0 highest), FIFO within a priority."""
    now = timezone.now()
    assigned = 0
    settle: set[int] = set()
    agents = list(Agent.objects.filter(enabled=True).order_by("pk"))
    _show_agentless(not agents)
    candidates = _candidates(agents)
    if not any(c.load < c.max_concurrency for c in candidates.values()):
        return 0
    open_statuses = [SubtaskStatus.WAITING, *SUBTASK_IN_FLIGHT]
    lost_statuses = [SubtaskStatus.FAILED, SubtaskStatus.CANCELLED]
    runnable = (
        Subtask.objects.filter(status=SubtaskStatus.WAITING, job__status=JobStatus.WORKING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .annotate(
            open_deps=Count("depends_on", filter=Q(depends_on__status__in=open_statuses)),
            lost_deps=Count("depends_on", filter=Q(depends_on__status__in=lost_statuses)),
        )
        .filter(Q(open_deps=0) | Q(lost_deps__gt=0))
        .only("pk", "job_id", "type", "assign_hint", "status")
        .order_by("priority", "job_id", "pk")[:DISPATCH_BATCH]
    )
    full_types: set[str] = set()
    for sub in runnable:
        if sub.lost_deps:
            if sub.transition(
                SubtaskStatus.WAITING, SubtaskStatus.FAILED, error="dependency failed"
            ):
                events.subtask_changed(sub.pk)
                settle.add(sub.job_id)
            continue
        if not any(c.load < c.max_concurrency for c in candidates.values()):
            break
        if sub.type in full_types and not sub.assign_hint:
            continue
        chosen, reasons = choose(sub.type, candidates.values(), sub.assign_hint)
        if chosen is None:
            full_types.add(sub.type)
            continue
        if sub.transition(
            SubtaskStatus.WAITING,
            SubtaskStatus.QUEUED,
            agent_id=chosen.id,
            allocation=reasons,
            next_attempt_at=None,
        ):
            candidates[chosen.id] = replace(chosen, load=chosen.load + 1)
            assigned += 1
            events.subtask_changed(sub.pk)
            transaction.on_commit(lambda pk=sub.pk: tasks.run_subtask.delay(pk))
    for job_id in settle:
        settle_job(job_id)
    return assigned


def _show_agentless(agentless: bool) -> None:
    """With no agent enabled at all, running jobs wait, saying why; they resume with one."""
    if agentless:
        jobs = Job.objects.filter(status=JobStatus.WORKING, subtasks__status=SubtaskStatus.WAITING)
        moves = (JobStatus.WORKING, JobStatus.WAITING, NO_AGENT)
    else:
        jobs = Job.objects.filter(status=JobStatus.WAITING, status_reason=NO_AGENT)
        moves = (JobStatus.WAITING, JobStatus.WORKING, "")
    expected, new, reason = moves
    ids = list(jobs.distinct().values_list("pk", flat=True))
    if ids:
        Job.objects.filter(pk__in=ids, status=expected).update(status=new, status_reason=reason)
        for pk in ids:
            events.job_changed(pk, moved=True)


def _prompt(sub: Subtask, agent: Agent) -> list[dict]:
    limit = settings.PROMPT_DEPENDENCY_CHARS
    upstream = [
        f"Result of {dep.key} ({dep.type}):\n{dep.result[:limit]}"
        for dep in sub.depends_on.order_by("pk")
    ]
    job = sub.job
    parts = [
        f"Job: {job.title}\n\n{job.description}",
        f"Your subtask ({sub.type}): {sub.description}",
    ]
    if upstream:
        parts.append("What your teammates found:\n\n" + "\n\n".join(upstream))
    system = (
        agent.system_prompt
        or f"You are {agent.name}, a specialist in {', '.join(agent.specialties)}."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def run_subtask(subtask_id: int) -> None:
    sub = Subtask.objects.select_related("job", "agent").filter(pk=subtask_id).first()
    if sub is None or sub.status != SubtaskStatus.QUEUED or sub.agent is None:
        return
    if sub.job.status != JobStatus.WORKING:
        if sub.transition(
            SubtaskStatus.QUEUED, SubtaskStatus.CANCELLED, error="job is not running"
        ):
            events.subtask_changed(sub.pk)
        return
    # The claim: of two deliveries of this message, only one gets past here. The attempt
    # number then marks this run, so a run the reconciler gave up on cannot complete it.
    attempt = sub.attempts + 1
    if not sub.transition(
        SubtaskStatus.QUEUED, SubtaskStatus.WORKING, started_at=timezone.now(), attempts=attempt
    ):
        return
    events.subtask_changed(sub.pk)
    agent = sub.agent

    def heartbeat() -> None:
        # Waiting for a limiter slot is not being stuck: the reconciler's clock starts here.
        Subtask.objects.filter(pk=sub.pk, attempts=attempt).update(started_at=timezone.now())

    try:
        answer = call_llm(
            agent=agent,
            job_id=sub.job_id,
            subtask_id=sub.pk,
            purpose=LLMCall.Purpose.SUBTASK,
            messages=_prompt(sub, agent),
            on_start=heartbeat,
            budgeted=sub.job.has_budget,
        )
    except BudgetExceeded:
        if sub.transition(
            SubtaskStatus.WORKING, SubtaskStatus.CANCELLED, attempt=attempt, error=BUDGET_EXCEEDED
        ):
            events.subtask_changed(sub.pk)
        end_job(sub.job_id, JobStatus.FAILED, BUDGET_EXCEEDED)
        dispatch_ready()
        return
    except llm.LLMError as exc:
        _subtask_failed(sub, attempt, exc)
        dispatch_ready()
        return
    text = answer.response
    if answer.finish_reason == "length":
        text += "\n\n(Truncated: the model reached its max_tokens.)"
    with state.locked(sub.job_id), transaction.atomic():
        if not sub.transition(
            SubtaskStatus.WORKING,
            SubtaskStatus.COMPLETED,
            attempt=attempt,
            result=text,
            error="",
            latency_s=answer.latency_s,
        ):
            return
        metrics.record_outcome(
            agent.pk,
            ok=True,
            latency_s=answer.latency_s,
            tokens=answer.total_tokens,
            cost=answer.cost,
        )
        events.agent_changed(agent.pk)
        state.record_result(sub.job_id, sub.key, text, author=f"{agent.slug}/{sub.key}")
        events.subtask_changed(sub.pk)
        settle_job(sub.job_id)
    dispatch_ready()


def _subtask_failed(sub: Subtask, attempt: int, exc: llm.LLMError) -> None:
    sub.refresh_from_db(fields=["attempts", "retry_count"])
    now = timezone.now()
    with transaction.atomic():
        if exc.rate_limited and sub.attempts <= sub.max_retries + MAX_RATE_LIMIT_PAUSES:
            delay = exc.retry_after or metrics.retry_delay(1)
            at = now + timedelta(seconds=delay)
            moved = sub.transition(
                SubtaskStatus.WORKING,
                SubtaskStatus.WAITING,
                attempt=attempt,
                next_attempt_at=at,
                error=f"rate-limited, next attempt at {at:%H:%M:%S}",
            )
        elif not exc.permanent and sub.retry_count < sub.max_retries:
            retry = sub.retry_count + 1
            delay = metrics.retry_delay(retry)
            at = now + timedelta(seconds=delay)
            moved = sub.transition(
                SubtaskStatus.WORKING,
                SubtaskStatus.WAITING,
                attempt=attempt,
                retry_count=retry,
                next_attempt_at=at,
                error=f"attempt {sub.attempts} failed: {exc}",
            )
        else:
            delay = None
            moved = sub.transition(
                SubtaskStatus.WORKING, SubtaskStatus.FAILED, attempt=attempt, error=str(exc)
            )
            if moved:
                metrics.record_outcome(sub.agent_id, ok=False, latency_s=exc.latency_s)
                events.agent_changed(sub.agent_id)
                settle_job(sub.job_id)
        if moved:
            events.subtask_changed(sub.pk)
            if delay is not None:
                transaction.on_commit(lambda: tasks.dispatch.apply_async(countdown=delay))


def settle_job(job_id: int) -> None:
    """Roll a working job up from its subtasks. Call inside a transaction."""
    job = Job.objects.select_for_update().get(pk=job_id)
    if job.status != JobStatus.WORKING:
        return
    counts = dict(job.subtasks.values_list("status").annotate(n=Count("id")))
    total = sum(counts.values())
    completed = counts.get(SubtaskStatus.COMPLETED, 0)
    still_open = sum(counts.get(s, 0) for s in (SubtaskStatus.WAITING, *SUBTASK_IN_FLIGHT))
    failed = counts.get(SubtaskStatus.FAILED, 0) + counts.get(SubtaskStatus.CANCELLED, 0)
    if total and completed == total:
        job.transition(JobStatus.WORKING, JobStatus.SYNTHESIZING, claimed_at=None)
        transaction.on_commit(lambda: tasks.synthesize_job.delay(job_id))
    elif failed and not still_open:
        job.transition(
            JobStatus.WORKING, JobStatus.FAILED, error=f"{failed} of {total} subtasks failed."
        )
    events.job_changed(job_id, moved=job.status != JobStatus.WORKING)


def synthesize_job(job_id: int) -> None:
    claimed = Job.objects.filter(
        pk=job_id, status=JobStatus.SYNTHESIZING, claimed_at__isnull=True
    ).update(claimed_at=timezone.now())
    if not claimed:
        return
    job = Job.objects.get(pk=job_id)
    orchestrator = Agent.objects.orchestrator() or Agent.objects.filter(enabled=True).first()
    if orchestrator is None:
        Job.objects.filter(pk=job_id).update(claimed_at=None)
        return  # the reconciler tries again once an agent is enabled
    limit = settings.PROMPT_DEPENDENCY_CHARS
    results = "\n\n".join(
        f"## {s.key} ({s.type})\n{s.result[:limit]}" for s in job.subtasks.order_by("pk")
    )
    messages = [
        {
            "role": "system",
            "content": "You compose the final answer to a job from your team's results. "
            "Be complete and concise; keep what matters from each result.",
        },
        {"role": "user", "content": f"Job: {job.title}\n\n{job.description}\n\n{results}"},
    ]
    try:
        answer = call_llm(
            agent=orchestrator,
            job_id=job_id,
            purpose=LLMCall.Purpose.SYNTHESIS,
            messages=messages,
        )
    except BudgetExceeded:
        end_job(job_id, JobStatus.FAILED, BUDGET_EXCEEDED)
        return
    except llm.LLMError as exc:
        with transaction.atomic():
            Job.objects.filter(pk=job_id).update(claimed_at=None)
            if not _retry_later(
                tasks.synthesize_job, job_id, _failed_calls(job, "synthesis", exc), exc
            ):
                _fail_job(job, JobStatus.SYNTHESIZING, f"Synthesis failed: {exc}")
        return
    with transaction.atomic():
        if job.transition(
            JobStatus.SYNTHESIZING, JobStatus.COMPLETED, result=answer.response, claimed_at=None
        ):
            state.write(job_id, {"final": answer.response}, author=f"{orchestrator.slug}/synthesis")
            events.job_changed(job_id, moved=True)


def _resend(rows, task, now, what: str) -> int:
    """Send each row's step again and record it; bumping updated_at spaces the resends."""
    from .models import AuditEntry

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
        transaction.on_commit(lambda pk=pk: task.delay(pk))
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
        waiting = Job.objects.filter(status=JobStatus.WAITING, planned_at__isnull=True)
        if waiting.exists() and Agent.objects.orchestrator() is not None:
            waiting.update(status=JobStatus.QUEUED, status_reason="", updated_at=stale)
        # A worker that died mid-step left its claim behind: release it.
        Job.objects.filter(status=JobStatus.PLANNING, claimed_at__lt=stale).update(
            status=JobStatus.QUEUED, claimed_at=None, updated_at=stale
        )
        Job.objects.filter(status=JobStatus.SYNTHESIZING, claimed_at__lt=stale).update(
            claimed_at=None, updated_at=stale
        )
        Subtask.objects.filter(status=SubtaskStatus.WORKING, started_at__lt=stale).update(
            status=SubtaskStatus.QUEUED, updated_at=stale
        )
        counts["plans"] = _resend(
            Job.objects.filter(status=JobStatus.QUEUED, updated_at__lt=lost),
            tasks.plan_job,
            now,
            "planning re-sent: no worker took it",
        )
        counts["syntheses"] = _resend(
            Job.objects.filter(
                status=JobStatus.SYNTHESIZING, claimed_at__isnull=True, updated_at__lt=lost
            ),
            tasks.synthesize_job,
            now,
            "synthesis re-sent: no worker took it",
        )
        counts["subtasks"] = _resend(
            Subtask.objects.filter(status=SubtaskStatus.QUEUED, updated_at__lt=lost),
            tasks.run_subtask,
            now,
            "subtask re-sent: no worker finished it",
        )
    open_statuses = (SubtaskStatus.WAITING, *SUBTASK_IN_FLIGHT)
    unsettled = Job.objects.filter(status=JobStatus.WORKING).exclude(
        subtasks__status__in=open_statuses
    )
    for job_id in unsettled.values_list("pk", flat=True)[:RECONCILE_BATCH]:
        with transaction.atomic():
            settle_job(job_id)
    dispatch_ready()
    if any(counts.values()):
        log.info("reconcile re-dispatched %s", counts)
    return counts
