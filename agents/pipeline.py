"""The steps of a job: plan, dispatch, run a subtask, settle, synthesise.

Each step loads rows by id, claims its work with a conditional status update, and is safe
to run twice. The order lives in the database (the subtask DAG), not in Celery chains.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from . import dispatch, events, llm, metrics, planning, state, tasks
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
HEARTBEAT_AFTER_S = 5.0


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


def _claim_heartbeat(job_id: int, status: str):
    """Renew a job step's claim once a limiter slot is held, after a real wait for one."""
    claimed = time.monotonic()

    def heartbeat() -> None:
        if time.monotonic() - claimed > HEARTBEAT_AFTER_S:
            Job.objects.filter(pk=job_id, status=status).update(claimed_at=timezone.now())

    return heartbeat


def plan_job(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return
    if job.planned_at:  # a redelivered message after the plan was written
        dispatch.dispatch_ready()
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
    heartbeat = _claim_heartbeat(job.pk, JobStatus.PLANNING)

    def ask(messages: list[dict]) -> LLMCall:
        return call_llm(
            agent=orchestrator,
            job_id=job.pk,
            purpose=LLMCall.Purpose.PLAN,
            messages=messages,
            temperature=PLAN_TEMPERATURE,
            on_start=heartbeat,
        )

    try:
        answer = ask(messages)
        try:
            plan = planning.parse_plan(answer.response, max_subtasks=limit)
        except planning.PlanError as first:
            # One repair round-trip: tell the model what was wrong.
            answer = ask(planning.repair_messages(messages, answer.response, str(first)))
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
    dispatch.dispatch_ready()


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
        events.job_changed(job_id, moved=True)
    return True


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
            events.subtask_changed(sub.pk, sub.job_id)
        return
    # The claim: of two deliveries of this message, only one gets past here. The attempt
    # number then marks this run, so a run the reconciler gave up on cannot complete it.
    attempt = sub.attempts + 1
    if not sub.transition(
        SubtaskStatus.QUEUED, SubtaskStatus.WORKING, started_at=timezone.now(), attempts=attempt
    ):
        return
    events.subtask_changed(sub.pk, sub.job_id)
    agent = sub.agent

    claimed = time.monotonic()

    def heartbeat() -> None:
        # Waiting for a limiter slot is not being stuck: the reconciler's clock restarts here
        # (a write worth making only after a real wait).
        if time.monotonic() - claimed > HEARTBEAT_AFTER_S:
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
            events.subtask_changed(sub.pk, sub.job_id)
        end_job(sub.job_id, JobStatus.FAILED, BUDGET_EXCEEDED)
        dispatch.dispatch_ready()
        return
    except llm.LLMError as exc:
        _subtask_failed(sub, attempt, exc)
        dispatch.dispatch_ready()
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
        events.subtask_changed(sub.pk, sub.job_id)
        settle_job(sub.job_id)
    dispatch.dispatch_ready()


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
            events.subtask_changed(sub.pk, sub.job_id)
            if delay is not None:
                transaction.on_commit(lambda: tasks.dispatch_ready.apply_async(countdown=delay))


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
            on_start=_claim_heartbeat(job_id, JobStatus.SYNTHESIZING),
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
