"""The steps of a job: plan it, run a subtask, synthesise the answer.

Each step loads rows by id, claims its work with a conditional status update, and is safe
to run twice. The order lives in the database (the subtask DAG), not in Celery chains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from celery.worker import state as worker_state
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef
from django.utils import timezone

from . import (
    approvals,
    calls,
    dispatch,
    enqueue,
    events,
    hotpath,
    leases,
    lifecycle,
    llm,
    planning,
    state,
    telemetry,
    toolloop,
    versions,
)
from .calls import BudgetExceeded
from .models import Agent, Job, JobStatus, LLMCall, Subtask, SubtaskStatus, WaitingFor

log = logging.getLogger(__name__)

PLAN_TEMPERATURE = 0.3
MAX_CONTINUATIONS = 50
MAX_STEP_RETRIES = 3
SYNTHESIS_SYSTEM = (
    "You compose the final answer to a job from your team's results. "
    "Be complete and concise; keep what matters from each result."
)


# Planning


def plan_job(job_id: int) -> None:
    claimed = _claim_planning(job_id)
    if claimed is None:
        return
    job, tried_before = claimed
    orchestrator, specialists = Agent.objects.team()
    if orchestrator is None:
        reason = "Waiting for an enabled orchestrator agent to plan this job."
        job.transition(
            JobStatus.PLANNING,
            JobStatus.WAITING,
            waiting_for=WaitingFor.ORCHESTRATOR,
            status_reason=reason,
        )
        return
    with leases.holding(job):
        _plan(job, versions.pinned(orchestrator, job.agent_versions), tried_before, specialists)


def _claim_planning(job_id: int) -> tuple[Job, bool] | None:
    """The planning step's claim: the job moved queued → planning for this process, and
    whether an earlier worker held the step; None when it is not this process's to plan."""
    now = timezone.now()
    fields = {"claimed_at": now, **leases.claim()}
    # PostgreSQL: the claim and the job's row in one statement, most of the time.
    moved = {"status": JobStatus.PLANNING, "updated_at": now, "waiting_for": "", **fields}
    where = f"j.status = '{JobStatus.QUEUED}' AND j.planned_at IS NULL"
    claimed = hotpath.claim_job_step(job_id, where, moved)
    if claimed is not None:
        events.job_changed(job_id, status=JobStatus.PLANNING)
        return claimed
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return None
    if job.planned_at:  # a redelivered message after the plan was written
        dispatch.dispatch_ready()
        return None
    tried_before = bool(job.lease_owner)
    if not job.transition(JobStatus.QUEUED, JobStatus.PLANNING, **fields):
        return None  # another worker holds the planning step
    return job, tried_before


def _plan(job: Job, orchestrator: Agent, tried_before: bool, specialists: list[Agent]) -> None:
    try:
        plan = (tried_before and _recorded_plan(job)) or _ask_for_plan(
            job, orchestrator, specialists
        )
    except planning.PlanError as exc:
        error = f"The plan could not be used after one repair: {exc}"
        lifecycle.fail_job(job.pk, JobStatus.PLANNING, error)
    except BudgetExceeded as exc:
        lifecycle.end_job(job.pk, JobStatus.FAILED, str(exc))
    except llm.LLMError as exc:
        _retry_job_step(job, JobStatus.PLANNING, LLMCall.Purpose.PLAN, exc, orchestrator)
    else:
        _write_plan(job, orchestrator, plan)
        first = dispatch.dispatch_and_take()
        if first is not None:  # this thread's slot goes on with the plan's first subtask
            run_subtask_and_continue(first)


def _recorded_plan(job: Job) -> planning.Plan | None:
    """The plan an earlier attempt was paid for but did not write (its worker died)."""
    answer = calls.adopt_recorded(job.calls.filter(purpose=LLMCall.Purpose.PLAN))
    if answer is None:
        return None
    try:
        return planning.parse_plan(answer.response, max_subtasks=settings.PLAN_MAX_SUBTASKS)
    except planning.PlanError:
        return None  # asked again from the start, repair included


@telemetry.step("plan")
def _ask_for_plan(job: Job, orchestrator: Agent, specialists: list[Agent]) -> planning.Plan:
    """The orchestrator's plan, with one repair round-trip telling it what was wrong."""
    team = [(a.slug, a.specialties) for a in specialists]
    limit = settings.PLAN_MAX_SUBTASKS
    messages = planning.decomposition_messages(job.title, job.description, team, limit)

    def ask(messages: list[dict]) -> LLMCall:
        return calls.call_llm(
            agent=orchestrator,
            job_id=job.pk,
            purpose=LLMCall.Purpose.PLAN,
            messages=messages,
            temperature=PLAN_TEMPERATURE,
            budgeted=job.has_budget,
        )

    answer = ask(messages)
    try:
        return planning.parse_plan(answer.response, max_subtasks=limit)
    except planning.PlanError as first:
        answer = ask(planning.repair_messages(messages, answer.response, str(first)))
        return planning.parse_plan(answer.response, max_subtasks=limit)


def _write_plan(job: Job, orchestrator: Agent, plan: planning.Plan) -> None:
    """Subtasks, their dependencies and `pending_tasks` in one transaction (one statement on
    PostgreSQL: hotpath.write_plan)."""
    notes = "; ".join(plan.notes)
    if job.review_plan:
        notes = f"{lifecycle.AWAITS_REVIEW} " + notes
    new = JobStatus.WAITING if job.review_plan else JobStatus.WORKING
    moved = {
        "status": new,
        "updated_at": timezone.now(),
        "planned_at": timezone.now(),
        "claimed_at": None,
        "lease_owner": "",  # a synthesis claimed by no one yet (see synthesize_job)
        "takebacks": 0,  # the synthesis has its own STEP_MAX_TAKEBACKS
        "waiting_for": WaitingFor.REVIEW if job.review_plan else "",
        "status_reason": notes.strip()[:300],
    }
    subtasks = [
        Subtask(
            job=job,
            key=p.key,
            type=p.type,
            payload=p.payload,
            assign_hint=p.assign_to,
            priority=job.priority,
        )
        for p in plan.subtasks
    ]
    edges = [(p.key, d) for p in plan.subtasks for d in p.depends_on]
    pending = [
        {"id": p.key, "type": p.type, "description": p.description, "depends_on": p.depends_on}
        for p in plan.subtasks
    ]
    author = f"{orchestrator.slug}/plan"
    if hotpath.available():  # PostgreSQL: the whole plan in one statement
        hotpath.write_plan(job, moved, subtasks, edges, {"pending_tasks": pending}, author=author)
        return
    with transaction.atomic():
        # The job's move first: its row lock, and the check that the plan is still to write
        # (announced last, as Job.transition would announce it there).
        rows = Job.objects.filter(pk=job.pk, status=JobStatus.PLANNING, planned_at__isnull=True)
        if not rows.update(**moved):
            return
        by_key = {s.key: s for s in Subtask.objects.bulk_create(subtasks)}
        Edge = Subtask.depends_on.through
        Edge.objects.bulk_create(
            Edge(from_subtask_id=by_key[f].pk, to_subtask_id=by_key[t].pk) for f, t in edges
        )
        state.write(job.pk, {"pending_tasks": pending}, author=author)
        for name, value in moved.items():
            setattr(job, name, value)
        events.job_changed(job.pk, status=new)


def _retry_job_step(
    job: Job, status: str, purpose: str, exc: llm.LLMError, orchestrator: Agent | None = None
) -> None:
    """A planning or synthesis call failed: try the step again later, or fail the job."""
    failed = job.calls.filter(purpose=purpose).exclude(error="")
    pauses = failed.filter(http_status=429).count() - int(exc.rate_limited)
    failures = failed.exclude(http_status=429).count() - int(not exc.rate_limited)
    delay = lifecycle.next_attempt_in(
        exc, failures=failures, pauses=pauses, retries=MAX_STEP_RETRIES
    )
    with transaction.atomic():
        if delay is None:
            what = "Planning" if status == JobStatus.PLANNING else "Synthesis"
            if lifecycle.fail_job(job.pk, status, f"{what} failed: {exc}") and orchestrator:
                Agent.objects.record_outcome(orchestrator.pk, ok=False, latency_s=exc.latency_s)
        elif status == JobStatus.PLANNING:
            job.transition(status, JobStatus.QUEUED, status_reason=str(exc)[:300])
            enqueue.plan_job(job.pk, countdown=delay)
        elif job.release(JobStatus.SYNTHESIZING):
            enqueue.synthesize_job(job.pk, countdown=delay)


# Subtasks


def run_subtask_and_continue(subtask: int | Subtask) -> None:
    """Run a subtask, then go on with one that the slot it freed was given, and so on.

    Each continuation saves a broker message and a claim (the dispatch pass claims the next
    subtask for this thread), as does synthesising in this thread the job whose last subtask
    it finished (the freed slot's work then goes by message: a subtask claimed for this
    thread would wait, its lease unrenewed, for the synthesis). The chain is bounded, and
    ends when the worker is asked to shut down, so the message that started it is
    acknowledged soon.
    """
    for turn in range(MAX_CONTINUATIONS):
        ran = run_subtask(subtask)
        if ran is None:
            return
        stopping = bool(worker_state.should_stop)
        if stopping or ran.ready_job_id is not None or turn == MAX_CONTINUATIONS - 1:
            dispatch.dispatch_ready()
            if ran.ready_job_id is not None and stopping:
                enqueue.synthesize_job(ran.ready_job_id)
            elif ran.ready_job_id is not None:
                synthesize_job(ran.ready_job_id)
            return
        subtask = dispatch.dispatch_and_take()
        if subtask is None:
            return


@dataclass(frozen=True)
class Ran:
    """A subtask this thread ran; `ready_job_id` when its job now awaits synthesis."""

    ready_job_id: int | None = None


@telemetry.step("subtask")
def run_subtask(subtask: int | Subtask) -> Ran | None:
    """One subtask's call and outcome; None when another delivery holds it. Given as an id
    (a message: claimed here) or already claimed for this thread (by its dispatch pass)."""
    sub = subtask if isinstance(subtask, Subtask) else _claim_subtask(subtask)
    if sub is None:
        return None
    with leases.holding(sub):
        return _run_claimed(sub)


def _run_claimed(sub: Subtask) -> Ran:
    try:
        answer = toolloop.run(sub, _prompt) if sub.agent.tools else _answer(sub)
        if answer is None:
            return Ran()  # paused awaiting an operator's approval: the thread is free
    except BudgetExceeded as exc:
        sub.transition(
            SubtaskStatus.WORKING,
            SubtaskStatus.CANCELLED,
            attempt=sub.attempts,
            error=str(exc),
        )
        lifecycle.end_job(sub.job_id, JobStatus.FAILED, str(exc))
    except toolloop.StepCapReached as exc:
        _fail_subtask(sub, str(exc), latency_s=0.0)  # asking again would end the same way
    except llm.LLMError as exc:
        _subtask_failed(sub, exc)
    else:
        if calls.db_retry(lambda: _complete_subtask(sub, answer)):
            return Ran(ready_job_id=sub.job_id)
    return Ran()


def _answer(sub: Subtask) -> LLMCall | None:
    """The answer of an agent without tools: one call, or None when the subtask is now
    paused awaiting approval."""
    if sub.attempts > 1:  # a later attempt first looks for an answer an earlier one paid for
        recorded = calls.adopt_recorded(sub.calls.all())
        if recorded is not None:
            return recorded
    messages = approvals.gate(sub, _prompt(sub))
    if messages is None:
        return None
    return calls.call_llm(
        agent=sub.agent,
        job_id=sub.job_id,
        subtask_id=sub.pk,
        purpose=LLMCall.Purpose.SUBTASK,
        messages=messages,
        budgeted=sub.job.has_budget,
    )


def _claim_subtask(subtask_id: int) -> Subtask | None:
    """The claim: of two deliveries of one message, only one gets a subtask back.

    The attempt number then marks this run, so a run the reconciler gave up on cannot
    complete it.
    """
    sub = hotpath.claim(subtask_id)  # PostgreSQL: one statement, most of the time
    if sub is not None:
        return sub
    upstream = Subtask.depends_on.through.objects.filter(from_subtask=OuterRef("pk"))
    sub = (
        Subtask.objects.select_related("job", "agent")
        .annotate(has_upstream=Exists(upstream))  # spares _prompt a query for most subtasks
        .filter(pk=subtask_id)
        .first()
    )
    if sub is None or sub.status != SubtaskStatus.QUEUED or sub.agent is None:
        return None
    if sub.job.status != JobStatus.WORKING:
        sub.transition(SubtaskStatus.QUEUED, SubtaskStatus.CANCELLED, error="job is not running")
        return None
    if sub.job.agent_versions:  # an experiment's or a re-run's chosen versions
        sub.agent = versions.pinned(sub.agent, sub.job.agent_versions)
    attempt = sub.attempts + 1
    if not sub.transition(
        SubtaskStatus.QUEUED,
        SubtaskStatus.WORKING,
        started_at=timezone.now(),
        attempts=attempt,
        agent_version=sub.agent.version,  # the agent row loaded above: no query of its own
        **leases.claim(),
    ):
        return None
    return sub


def _prompt(sub: Subtask) -> list[dict]:
    limit = settings.PROMPT_DEPENDENCY_CHARS
    agent, job = sub.agent, sub.job
    rows = getattr(sub, "upstream_results", None)  # read by its claim (agents.hotpath)
    if rows is None:
        deps = sub.depends_on.only("key", "type", "result").order_by("pk")
        rows = [(d.key, d.type, d.result) for d in deps] if sub.has_upstream else []
    upstream = [f"Result of {key} ({type_}):\n{result[:limit]}" for key, type_, result in rows]
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


def _complete_subtask(sub: Subtask, answer: LLMCall) -> bool:
    """Result, usage, shared state and the job's roll-up in one short transaction.

    True when this was the job's last subtask: it is ready for synthesis.
    """
    text = answer.response
    if answer.finish_reason == "length":
        text += "\n\n(Truncated: the model reached its max_tokens.)"
    author = f"{sub.agent.slug}/{sub.key}"
    if hotpath.available():
        return hotpath.complete(sub, answer, text, author=author).ready
    usage = {"tokens": F("tokens") + answer.total_tokens, "cost": F("cost") + answer.cost}
    with transaction.atomic():
        # First: the job's row lock orders this completion after its siblings' (settle_job).
        calls.add_usage(sub.job_id, answer.total_tokens, answer.cost)
        completed = sub.transition(
            SubtaskStatus.WORKING,
            SubtaskStatus.COMPLETED,
            attempt=sub.attempts,
            result=text,
            error="",
            latency_s=answer.latency_s,
            **usage,
        )
        if not completed:
            # A later attempt took over. The call was paid all the same: counted here,
            # unless that attempt finished from it (adopted it) and counts it itself.
            mine = LLMCall.objects.filter(pk=answer.pk, adopted=LLMCall.Reuse.NONE)
            if mine.update(adopted=LLMCall.Reuse.COUNTED):
                Subtask.objects.filter(pk=sub.pk).update(**usage)
            else:
                transaction.set_rollback(True)
            return False
        state.record_result(sub.job_id, sub.key, text, author=author)
        ready = lifecycle.settle_job(sub.job_id)
    # Outside the transaction: the agent's row is shared by all its subtasks' completions.
    Agent.objects.record_outcome(
        sub.agent_id,
        ok=True,
        latency_s=answer.latency_s,
        tokens=answer.total_tokens,
        cost=answer.cost,
    )
    return ready


def _subtask_failed(sub: Subtask, exc: llm.LLMError) -> None:
    sub.refresh_from_db(fields=["attempts", "retry_count"])
    pauses = sub.attempts - sub.retry_count - 1
    retries = sub.max_retries
    delay = lifecycle.next_attempt_in(exc, failures=sub.retry_count, pauses=pauses, retries=retries)
    if delay is None:
        _fail_subtask(sub, str(exc), latency_s=exc.latency_s)
        return
    at = timezone.now() + timedelta(seconds=delay)
    if exc.rate_limited:
        fields = {"error": f"rate-limited, next attempt at {at:%H:%M:%S}"}
    else:
        fields = {
            "error": f"attempt {sub.attempts} failed: {exc}",
            "retry_count": sub.retry_count + 1,
        }
    with transaction.atomic():
        if sub.transition(
            SubtaskStatus.WORKING,
            SubtaskStatus.WAITING,
            attempt=sub.attempts,
            next_attempt_at=at,
            **fields,
        ):
            enqueue.dispatch_ready(countdown=delay)


def _fail_subtask(sub: Subtask, error: str, *, latency_s: float) -> None:
    """The subtask fails for good (no retry left, or none would help)."""
    with transaction.atomic():
        failed = sub.transition(
            SubtaskStatus.WORKING, SubtaskStatus.FAILED, attempt=sub.attempts, error=error
        )
    if failed:
        Agent.objects.record_outcome(sub.agent_id, ok=False, latency_s=latency_s)
        lifecycle.settle_job_locked(sub.job_id)


# Synthesis


@telemetry.step("synthesis")
def synthesize_job(job_id: int) -> None:
    claimed = _claim_synthesis(job_id)
    if claimed is None:
        return
    job, tried_before = claimed
    orchestrator = Agent.objects.orchestrator() or Agent.objects.filter(enabled=True).first()
    if orchestrator is None:
        job.release(JobStatus.SYNTHESIZING)
        return  # the reconciler tries again once an agent is enabled
    with leases.holding(job):
        _synthesize(job, versions.pinned(orchestrator, job.agent_versions), tried_before)


def _claim_synthesis(job_id: int) -> tuple[Job, bool] | None:
    """The synthesis's claim (the job stays synthesizing, held by this process), and whether
    an earlier worker held it; None when it is not this process's to synthesise."""
    fields = {"claimed_at": timezone.now(), **leases.claim()}
    # PostgreSQL: the claim and the job's row in one statement, most of the time.
    where = f"j.status = '{JobStatus.SYNTHESIZING}' AND j.claimed_at IS NULL"
    claimed = hotpath.claim_job_step(job_id, where, fields)
    if claimed is not None:
        return claimed
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != JobStatus.SYNTHESIZING or job.claimed_at is not None:
        return None
    tried_before = bool(job.lease_owner)
    if not job.claim(JobStatus.SYNTHESIZING, **fields):
        return None  # another worker holds the synthesis
    return job, tried_before


def _synthesize(job: Job, orchestrator: Agent, tried_before: bool) -> None:
    try:
        answer = (tried_before and _recorded_synthesis(job)) or calls.call_llm(
            agent=orchestrator,
            job_id=job.pk,
            purpose=LLMCall.Purpose.SYNTHESIS,
            messages=_synthesis_messages(job),
            budgeted=job.has_budget,
        )
    except BudgetExceeded as exc:
        lifecycle.end_job(job.pk, JobStatus.FAILED, str(exc))
        return
    except llm.LLMError as exc:
        _retry_job_step(job, JobStatus.SYNTHESIZING, LLMCall.Purpose.SYNTHESIS, exc, orchestrator)
        return

    author = f"{orchestrator.slug}/synthesis"

    def finish() -> None:
        if hotpath.available():  # PostgreSQL: the move and the state's write in one statement
            hotpath.finish_synthesis(job, answer.response, author=author)
            return
        with transaction.atomic():
            if job.transition(
                JobStatus.SYNTHESIZING, JobStatus.COMPLETED, result=answer.response, claimed_at=None
            ):
                state.write(job.pk, {"final": answer.response}, author=author)

    calls.db_retry(finish)


def _recorded_synthesis(job: Job) -> LLMCall | None:
    """A synthesis an earlier attempt was paid for, of the results the job holds now."""
    paid = job.calls.filter(purpose=LLMCall.Purpose.SYNTHESIS)
    last_result = job.subtasks.aggregate(at=Max("finished_at"))["at"]
    if last_result is not None:
        paid = paid.filter(created_at__gt=last_result)
    return calls.adopt_recorded(paid)


def _synthesis_messages(job: Job) -> list[dict]:
    limit = settings.PROMPT_DEPENDENCY_CHARS
    results = "\n\n".join(
        f"## {s.key} ({s.type})\n{s.result[:limit]}"
        # job_id too: the related manager reads it on every row (a query each if deferred).
        for s in job.subtasks.only("job_id", "key", "type", "result").order_by("pk")
    )
    return [
        {"role": "system", "content": SYNTHESIS_SYSTEM},
        {"role": "user", "content": f"Job: {job.title}\n\n{job.description}\n\n{results}"},
    ]
